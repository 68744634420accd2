"""The Trainer: fit, evaluate, test and predict, with one loop that reads top to bottom.

Options live in the small config dataclasses of :mod:`finetune_kit.config`; the constructor
takes them as flat keyword arguments (``epochs=5, lr=0.05, batch_size=256``) or as a whole
:class:`~finetune_kit.config.RunConfig`. Everything the loop needs is built in :meth:`fit`, and
the loop itself is :meth:`Trainer._run_epochs` and :meth:`Trainer._train_epoch`.

Example:
    >>> import finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=28,
    ...                           train_size=60, test_size=30)
    >>> model = fk.create_model("convnet", num_classes=3, in_channels=1)
    >>> import tempfile
    >>> trainer = fk.Trainer(model, data, epochs=1, batch_size=32, progress=False,
    ...                      output_dir=tempfile.mkdtemp() + "/run")
    >>> history = trainer.fit()
    >>> len(history)
    1
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetune_kit import checkpoint as ckpt
from finetune_kit.callbacks import (
    Callback,
    CallbackList,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    Timer,
)
from finetune_kit.config import RunConfig, save_config
from finetune_kit.data import DataBundle, check_compatible, make_loaders
from finetune_kit.data.sampling import derive_seed
from finetune_kit.distributed import (
    DistEnv,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    teardown,
    wrap_ddp,
)
from finetune_kit.ema import ModelEma
from finetune_kit.errors import ConfigError, TrainingError
from finetune_kit.evaluation import evaluate_model
from finetune_kit.freezing import apply_strategy
from finetune_kit.loggers import CSVLogger
from finetune_kit.losses import create_loss
from finetune_kit.optim import create_optimizer, param_groups
from finetune_kit.overrides import route_options
from finetune_kit.prediction import Predictions, predict
from finetune_kit.progress import ProgressBar
from finetune_kit.regularization import MixupCutmix
from finetune_kit.report import classification_report
from finetune_kit.resume import check_resume_compatible, restore_training_state, training_state
from finetune_kit.rundir import RunDir
from finetune_kit.runtime import Precision, configure_determinism, resolve_device, seed_everything
from finetune_kit.schedulers import create_scheduler
from finetune_kit.signals import StopOnSignal
from finetune_kit.state import EpochTotals, History, TrainState

__all__ = ["Trainer"]

class Trainer:
    """Train and evaluate a classifier on a :class:`~finetune_kit.data.DataBundle`.

    Args:
        model: the network (e.g. from :func:`finetune_kit.create_model`).
        data: the datasets (from :func:`finetune_kit.create_datasets`).
        config: a whole run configuration; its ``loader``, ``optim``, ``finetune`` and
            ``train`` sections are used, ``data`` and ``model`` are saved with the run.
        callbacks: extra callbacks; the standard ones (progress bar, CSV log, checkpoints,
            NaN guard, timer, LR monitor) are added unless one of the same class is given.
        **options: any key of the loader/optim/finetune/train sections, e.g. ``epochs=5``,
            ``lr=0.05``, ``batch_size=256``, ``precision="bf16-mixed"``, ``output_dir="runs/x"``.

    Raises:
        ConfigError: an unknown option (with a suggestion) or a bad value.

    Example:
        >>> Trainer.__name__
        'Trainer'
    """

    def __init__(self, model: nn.Module, data: DataBundle, *, config: RunConfig | None = None,
                 callbacks: list[Callback] | None = None, **options: Any) -> None:
        self.config = route_options(config or RunConfig(), options)
        info = getattr(model, "finetune_kit_info", None)
        if info is not None:  # a model built for other data fails here, before any work
            check_compatible(data, in_channels=info.in_channels, num_classes=info.num_classes)
        self.model = model
        self.data = data
        self.dist = DistEnv.from_environ()
        self.callbacks = CallbackList(self._default_callbacks(list(callbacks or [])))
        self.state = TrainState()
        self.history = History()
        self.device = resolve_device(self.config.train.device)
        if self.dist.is_distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        self.precision = Precision.resolve(self.config.train.precision, self.device)
        self.run_dir: RunDir | None = None
        self.loaders = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.ema: ModelEma | None = None
        self.stop_signal: str | None = None  # set by SIGINT/SIGTERM: save and stop at the next step
        self.totals: EpochTotals | None = None  # the training epoch's running sums

    # ----------------------------------------------------------------- set-up
    def _default_callbacks(self, given: list[Callback]) -> list[Callback]:
        have = {type(cb) for cb in given}
        has_val = self.data.val is not None
        defaults: list[Callback] = [
            Timer(),
            LearningRateMonitor(),
            NaNGuard(check_every=self.config.train.log_every),
            CSVLogger(),
            ModelCheckpoint(monitor="val_accuracy" if has_val else None, mode="max",
                            every_n_steps=self.config.train.checkpoint_every),
        ]
        if self.config.train.progress:
            defaults.insert(0, ProgressBar())
        chosen = [cb for cb in defaults if type(cb) not in have] + given
        # Under DDP only rank 0 shows progress and writes logs and plots.
        return [cb for cb in chosen if self.is_main or not getattr(cb, "main_process_only", False)]

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0 under DDP; always in a single process)."""
        return self.dist.is_main

    def _setup(self, resume: str | Path | None) -> dict[str, Any] | None:
        """Build loaders, loss, optimizer, scheduler, then the run directory; load a checkpoint.

        Every part is built (and every name checked) before the run directory is created, so a
        bad option leaves nothing behind.
        """
        cfg = self.config
        state = None
        if init_distributed(self.dist, self.device):
            atexit.register(teardown)
        if resume is not None:
            path = self._resolve_resume(resume)
            state = ckpt.load_checkpoint(path, map_location="cpu")
            check_resume_compatible(state, self.model, path)
        else:
            RunDir.check_available(cfg.train.output_dir, overwrite=cfg.train.overwrite)
            seed_everything(cfg.train.seed + self.dist.rank)  # dropout differs across ranks
        configure_determinism(cfg.train.deterministic, self.device)
        self._prepare_model_and_loaders()
        if cfg.train.sync_batchnorm and self.dist.is_distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.mixer = self._make_mixer()
        # With mixup/cutmix the soft targets already carry the label smoothing.
        smoothing = 0.0 if self.mixer is not None else cfg.optim.label_smoothing
        self.loss_fn = create_loss(cfg.optim.loss, label_smoothing=smoothing)
        self.plan = apply_strategy(self.model, cfg.finetune.strategy, bn_policy=cfg.finetune.bn_policy,
                                   **cfg.finetune.options)
        self.added_groups: list[list[str]] = []  # names of the parameters each unfreeze added
        self._build_optimizer()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_scaler)
        # Warmup (decay ramps up from 0.1) keeps early evaluations from mixing in the random init.
        self.ema = ModelEma(self.model, decay=cfg.optim.ema, warmup=True) if cfg.optim.ema else None
        self._wrap_model()
        barrier()  # every rank has checked and built everything before rank 0 writes
        if resume is not None:
            self.run_dir = RunDir.for_resume(path.parent, write=self.is_main)
        else:
            self.run_dir = RunDir.create(cfg.train.output_dir, overwrite=cfg.train.overwrite,
                                         write=self.is_main)
        if self.is_main:
            self._write_run_files()
        barrier()
        return state

    def _wrap_model(self) -> None:
        """DDP over the trainable parameters (rebuilt after an unfreeze), then torch.compile."""
        wrapped = wrap_ddp(self.model, self.device)
        self.forward_model = torch.compile(wrapped) if self.config.train.compile else wrapped

    def _prepare_model_and_loaders(self) -> None:
        """Move the model to the device (channels_last on CUDA by default) and make the loaders."""
        cfg = self.config
        channels_last = cfg.train.channels_last
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loaders = make_loaders(
            self.data, batch_size=cfg.loader.batch_size, device=self.device, loader=cfg.loader.loader,
            augment=cfg.loader.augment, seed=cfg.train.seed, num_workers=cfg.loader.num_workers,
            eval_batch_size=cfg.loader.eval_batch_size, channels_last=channels_last,
            rank=self.dist.rank, world_size=self.dist.world_size,
        )

    def _make_mixer(self) -> MixupCutmix | None:
        opt = self.config.optim
        if opt.mixup_alpha == 0 and opt.cutmix_alpha == 0:
            return None
        return MixupCutmix(opt.mixup_alpha, opt.cutmix_alpha, label_smoothing=opt.label_smoothing,
                           num_classes=self.data.num_classes, generator=torch.Generator())

    def _build_optimizer(self) -> None:
        opt = self.config.optim
        if opt.scheduler == "plateau" and self.data.val is None:
            raise ConfigError("scheduler='plateau' follows the validation loss, but there is no "
                              "validation set: set data.val_fraction > 0 or choose another scheduler.")
        groups = param_groups(self.model, weight_decay=opt.weight_decay,
                              no_decay_norm_bias=opt.no_decay_norm_bias,
                              lr_multipliers=self.plan.lr_multipliers())
        self.optimizer = create_optimizer(
            groups, opt.optimizer, lr=opt.lr, weight_decay=opt.weight_decay,
            momentum=opt.momentum, nesterov=opt.nesterov,
        )
        steps = math.ceil(len(self.loaders.train) / opt.grad_accum)
        self.scheduler = create_scheduler(
            self.optimizer, opt.scheduler, epochs=self.config.train.epochs, steps_per_epoch=steps,
            warmup_epochs=opt.warmup_epochs, **opt.scheduler_options,
        )

    def add_param_group(self, names: list[str]) -> None:
        """Give newly unfrozen parameters to the optimizer (the scheduler drives them from now on)."""
        opt = self.config.optim
        wanted = {id(p) for n, p in self.model.named_parameters() if n in set(names)}
        groups = param_groups(self.model, weight_decay=opt.weight_decay,
                              no_decay_norm_bias=opt.no_decay_norm_bias,
                              lr_multipliers=self.plan.lr_multipliers())
        for group in groups:
            group["params"] = [p for p in group["params"] if id(p) in wanted]
            if group["params"]:
                self.scheduler.add_param_group(group)
        self.added_groups.append(list(names))
        if self.dist.is_distributed:
            self._wrap_model()  # DDP registers only the parameters trainable at wrap time

    def _write_run_files(self) -> None:
        run_config = dataclasses.replace(self.config)
        run_config.train = dataclasses.replace(run_config.train, output_dir=str(self.run_dir.root))
        summary = self.plan.summary().table()
        with self.run_dir.writing():
            save_config(run_config, self.run_dir.path("config.toml"))
            self.run_dir.path("trainable.txt").write_text(summary + "\n", encoding="utf-8")
            self.data.save_split(self.run_dir.path("split.json"))
            self.data.save_class_index(self.run_dir.path("classes.json"))
        if self.config.train.progress:
            print(summary, file=sys.stderr)

    def _resolve_resume(self, resume: str | Path) -> Path:
        if str(resume) == "last":
            return ckpt.find_checkpoint(self.config.train.output_dir)
        return ckpt.find_checkpoint(resume)

    # ------------------------------------------------------------------ fit
    def fit(self, resume: str | Path | None = None) -> History:
        """Train for ``epochs`` (or ``max_steps``), validating after every epoch.

        Args:
            resume: a checkpoint path, a run directory, or ``"last"`` (the ``last.ckpt`` of
                ``output_dir``). Training continues exactly where the checkpoint was taken.

        Returns:
            The :class:`~finetune_kit.state.History` of epoch rows. ``history.interrupted`` is
            True when a SIGINT/SIGTERM stopped the run (a checkpoint to resume was saved).

        Raises:
            OutputDirError: the run directory exists (and neither resume nor overwrite given).
            CheckpointError: the checkpoint to resume is missing, corrupted or of another model.
            TrainingError: the loss became NaN or infinite.
        """
        saved = self._setup(resume)
        if saved is not None:
            restore_training_state(self, saved)
        self.callbacks.fire("fit_start", self)
        with StopOnSignal(self):
            try:
                self._run_epochs()
            except BaseException as exc:
                self.state.exception = exc
                self.callbacks.fire("exception", self)
                raise
        self.callbacks.fire("fit_end", self)
        self.history.stop_reason = self.state.stop_reason
        return self.history

    def _run_epochs(self) -> None:
        cfg = self.config.train
        while self.state.epoch < cfg.epochs and self.state.stop_reason is None:
            if self.state.batch == 0:  # not when resuming mid-epoch: the unfreeze already happened
                unfrozen = self.plan.on_epoch_start(self.model, self.state.epoch)
                if unfrozen:
                    self.add_param_group(unfrozen)
            self.callbacks.fire("train_epoch_start", self)
            self._train_epoch()
            if self._signal_received():
                self._save_interrupted()
                return
            if self.state.batch < len(self.loaders.train):  # max_steps reached mid-epoch
                self.save_checkpoint("last.ckpt")  # the exact position, so it can be resumed
                return
            self.callbacks.fire("train_epoch_end", self)
            self._validate()
            if self.scheduler.interval == "epoch":
                self.scheduler.step(self.state.metrics.get("val_loss"))
            self._finish_epoch()

    def _train_epoch(self) -> None:
        """One pass over the training batches (from ``state.batch`` when resuming mid-epoch)."""
        cfg, opt = self.config.train, self.config.optim
        loader = self.loaders.train
        self.model.train()
        if self.totals is None:
            self.totals = EpochTotals(self.device)
        batches = loader.iter_epoch(self.state.epoch, start_batch=self.state.batch)
        for x, y in batches:
            targets = y
            if self.mixer is not None:  # seeded by position, so a resumed run mixes the same way
                self.mixer.generator.manual_seed(
                    derive_seed("mix", cfg.seed, self.state.epoch, self.state.batch))
                x, targets = self.mixer(x, y)
            with self.precision.autocast(self.device):
                logits = self.forward_model(x)
                loss = self.loss_fn(logits, targets)
            self.scaler.scale(loss / opt.grad_accum).backward()
            self.state.batch += 1
            if self.state.batch % opt.grad_accum == 0 or self.state.batch == len(loader):
                self._optimizer_step()
            self.totals.add(loss, logits.detach(), y)
            self.state.last_loss, self.state.last_batch_size = loss.detach(), len(y)
            self.callbacks.fire("train_batch_end", self)
            if cfg.max_steps is not None and self.state.global_step >= cfg.max_steps:
                self.request_stop(f"reached max_steps={cfg.max_steps}")
                break
            if self.at_step_boundary() and self._signal_received(self.state.batch == len(loader)):
                return

    def _optimizer_step(self) -> None:
        opt = self.config.optim
        if opt.grad_clip is not None:
            if self.precision.use_scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        if self.precision.use_scaler:  # a skipped step (inf/NaN gradients) lowers the scale
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.state.skipped_steps += int(self.scaler.get_scale() < scale)
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        if self.scheduler.interval == "step":
            self.scheduler.step()
        self.state.global_step += 1

    def at_step_boundary(self) -> bool:
        """True when no gradients are waiting to be accumulated (a checkpoint is exact here)."""
        return self.state.batch % self.config.optim.grad_accum == 0 or \
            self.state.batch == len(self.loaders.train)

    def _signal_received(self, force_check: bool = True) -> bool:
        """Whether SIGINT/SIGTERM arrived; under DDP all ranks agree (checked every log_every steps)."""
        if not self.dist.is_distributed:
            return self.stop_signal is not None
        if not force_check and self.state.global_step % self.config.train.log_every:
            return False
        flag = torch.tensor([0.0 if self.stop_signal is None else 1.0], device=self.device)
        if all_reduce_sum(flag).item() > 0:
            self.stop_signal = self.stop_signal or "SIGTERM"
            return True
        return False

    def running_loss(self) -> float:
        """Mean training loss of the current epoch so far, on this process (reads the device)."""
        return self.totals.means()[0] if self.totals is not None else float("nan")

    def _validate(self) -> None:
        train_loss, train_accuracy = self.totals.means(reduce=all_reduce_sum)
        self.state.metrics.update(epoch=self.state.epoch + 1, step=self.state.global_step,
                                  train_loss=train_loss, train_accuracy=train_accuracy)
        if not math.isfinite(self.state.metrics["train_loss"]):
            raise TrainingError(
                f"The mean training loss of epoch {self.state.epoch + 1} is not finite. "
                "Lower the learning rate, add grad_clip, or use precision='32'."
            )
        self.state.metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.precision.use_scaler:
            self.state.metrics["skipped_steps"] = self.state.skipped_steps
        if self.loaders.val is not None:
            values = self._evaluate_loader(self.loaders.val)
            self.state.metrics.update({f"val_{k}": v for k, v in values.items()
                                       if isinstance(v, (int, float))})
        self.callbacks.fire("validation_end", self)

    def _finish_epoch(self) -> None:
        self.history.append(self.state.metrics)
        self.state.epoch += 1
        self.state.batch = 0
        self.totals = None
        self.callbacks.fire("epoch_end", self)
        self.state.metrics = {}

    # ------------------------------------------------------------ evaluate
    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluation uses: the EMA copy when ``ema`` is set, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _evaluate_loader(self, loader) -> dict[str, Any]:
        cfg = self.config.train
        return evaluate_model(self.eval_model, loader, num_classes=self.data.num_classes,
                              precision=self.precision, device=self.device, metrics=cfg.metrics,
                              tta=cfg.tta)

    def _ensure_ready(self) -> None:
        if self.loaders is None:  # evaluating weights without fitting (e.g. a loaded checkpoint)
            self._prepare_model_and_loaders()

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Loss and accuracy of the current weights on ``"val"`` or ``"test"``.

        Returns:
            ``{"loss": ..., "accuracy": ...}``.
        """
        self._ensure_ready()
        loader = {"val": self.loaders.val, "test": self.loaders.test}.get(split)
        if loader is None:
            raise ConfigError(f"evaluate(split={split!r}): use 'val' or 'test' "
                              "(and a val_fraction > 0 for 'val').")
        values = self._evaluate_loader(loader)
        return {k: v for k, v in values.items() if isinstance(v, (int, float))}

    def test(self, *, save: bool = True, print_report: bool = True):
        """Evaluate on the test set and build the full classification report.

        The report (accuracy, per-class precision/recall/F1/support, confusion matrix) is
        printed and saved as ``report.txt`` and ``report.json`` in the run directory.

        Returns:
            The :class:`~finetune_kit.report.ClassificationReport`.
        """
        self._ensure_ready()
        if self.loaders.test is None:
            raise ConfigError(f"Dataset {self.data.name!r} has no test split; pass test=(images, "
                              "labels) to create_datasets, or use evaluate('val').")
        values = self._evaluate_loader(self.loaders.test)
        confusion = torch.tensor(values["confusion_matrix"])
        report = classification_report(confusion, class_names=list(self.data.class_names))
        report.loss = loss = values["loss"]
        if save and self.run_dir is not None and self.is_main:
            with self.run_dir.writing("the test report"):
                self.run_dir.path("report.txt").write_text(report.text() + "\n", encoding="utf-8")
                self.run_dir.path("report.json").write_text(report.to_json(), encoding="utf-8")
        if print_report and self.is_main:
            print(f"\nTest set: {int(confusion.sum())} images, loss {loss:.4f}\n{report.text()}")
        self.state.test_report = report
        self.callbacks.fire("test_end", self)
        return report

    def predict(self, images: Any, *, top_k: int = 5, batch_size: int | None = None) -> Predictions:
        """Class predictions for image files, uint8 tensors or a dataset split.

        Images are preprocessed as the evaluation data is (resize, normalisation of the
        dataset's preset) and classified by :attr:`eval_model`.

        Args:
            images: paths of PNG/JPEG files, a uint8 tensor ``(N, C, H, W)``, or a dataset.
            top_k: how many classes :meth:`Predictions.table` shows per image.
            batch_size: images per forward pass (default: the evaluation batch size).

        Returns:
            :class:`~finetune_kit.prediction.Predictions`: class indices, names, probabilities.

        Example:
            >>> import finetune_kit as fk, tempfile, torch
            >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=28,
            ...                           train_size=30, test_size=6)
            >>> trainer = fk.Trainer(fk.create_model("convnet", num_classes=3, in_channels=1),
            ...                      data, epochs=1, progress=False, output_dir=tempfile.mkdtemp())
            >>> out = trainer.predict(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
            >>> out.probabilities.shape
            torch.Size([2, 3])
        """
        self._ensure_ready()
        size = batch_size or self.config.loader.eval_batch_size or self.config.loader.batch_size
        return predict(self.eval_model, images, meta=self.data.meta(), device=self.device,
                       top_k=top_k, batch_size=size)

    # ------------------------------------------------------------ stopping
    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current epoch (callbacks call this)."""
        if self.state.stop_reason is None:
            self.state.stop_reason = reason

    def _save_interrupted(self) -> None:
        path = self.save_checkpoint("last.ckpt")
        self.history.interrupted = True
        self.state.stop_reason = f"interrupted by {self.stop_signal}"
        if self.is_main:
            print(f"\nStopped by {self.stop_signal}: checkpoint saved to {path}.\n"
                  f"Resume with: finetune-kit train --config {self.run_dir.path('config.toml')} "
                  f"--resume {path}", file=sys.stderr)

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, name: str) -> Path:
        """Write the full training state to ``name`` in the run directory, atomically.

        Under DDP every rank calls this (each contributes its RNG state); rank 0 writes.
        """
        path = self.run_dir.path(name)
        rng_per_rank = all_gather_objects(ckpt.capture_rng_state())
        if self.is_main:
            ckpt.save_checkpoint(training_state(self, rng_per_rank), path)
        barrier()
        return path
