"""The Trainer: fit, evaluate, test and predict, with one loop that reads top to bottom.

Options live in the small config dataclasses of :mod:`finetune_kit.config`; the constructor
takes them as flat keyword arguments (``epochs=5, lr=0.05, batch_size=256``) or as a whole
:class:`~finetune_kit.config.RunConfig`. Everything the loop needs is built in :meth:`fit`, and
the loop itself is :meth:`Trainer._run_epochs` and :meth:`Trainer._train_epoch`.
"""

from __future__ import annotations

import atexit
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetune_kit.callbacks import Callback
from finetune_kit.config import RunConfig
from finetune_kit.data import DataBundle
from finetune_kit.data.fingerprint import check_same_data
from finetune_kit.data.mixing import MixupCutmix
from finetune_kit.data.sampling import derive_seed
from finetune_kit.errors import TrainingError
from finetune_kit.freezing import FreezePlan
from finetune_kit.optim import ModelEma
from finetune_kit.optim.lr_finder import LRFindResult
from finetune_kit.optim.schedulers import Scheduler
from finetune_kit.runtime import configure_determinism, seed_everything
from finetune_kit.runtime.distributed import (
    all_reduce_sum,
    barrier,
    init_distributed,
    teardown,
    wrap_ddp,
)
from finetune_kit.storage import checkpoint as ckpt
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.training import lr_search, setup
from finetune_kit.training.evaluator import Evaluator
from finetune_kit.training.resume import (
    check_same_run,
    load_resume_state,
    restore_training_state,
    resume_target,
    save_training_state,
)
from finetune_kit.training.run_description import describe_run, fill_hint
from finetune_kit.training.signals import StopOnSignal, agree_on_stop
from finetune_kit.training.state import EpochTotals, History

__all__ = ["Trainer"]


class Trainer(Evaluator):
    """Train and evaluate a classifier on a :class:`~finetune_kit.data.DataBundle`.

    A Trainer is an :class:`~finetune_kit.training.evaluator.Evaluator` (``evaluate``,
    ``test``, ``predict``) that can also :meth:`fit`.

    Args:
        model: the network (e.g. from :func:`finetune_kit.create_model`).
        data: the datasets (from :func:`finetune_kit.create_datasets`).
        config: a whole run configuration; its ``loader``, ``optim``, ``finetune`` and
            ``train`` sections are used, ``data`` and ``model`` are saved with the run.
        callbacks: extra callbacks; the standard ones (progress bar, text log, metric loggers,
            checkpoints, NaN guard, timer, LR monitor, plots) are added unless one of the same
            class is given.
        **options: any key of the loader/optim/finetune/train sections, e.g. ``epochs=5``,
            ``lr=0.05``, ``batch_size=256``, ``precision="bf16-mixed"``, ``output_dir="runs/x"``.
            Every key, with its type, default and meaning, is in the config reference
            (`Config keys <cli.html#config-keys>`_; ``finetune-kit train --help`` for the
            flags); the `Trainer guide <guide/trainer.html>`_ explains them by topic.

    Raises:
        ConfigError: an unknown option (with a suggestion) or a bad value.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=32, test_size=8)
        >>> model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> trainer = fk.Trainer(model, data, epochs=2, lr=0.01, batch_size=16, progress=False,
        ...                      output_dir=tempfile.mkdtemp() + "/run")
        >>> len(trainer.fit()), trainer.state.global_step
        (2, 4)
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataBundle,
        *,
        config: RunConfig | None = None,
        callbacks: list[Callback] | None = None,
        **options: Any,
    ) -> None:
        # Resuming with an output_dir of one's own writes there; otherwise into the resumed run.
        self.output_dir_given = config is not None or "output_dir" in options
        config = setup.route_trainer_options(config or RunConfig(), options)
        chosen = setup.default_callbacks(config, has_val=data.val is not None, given=callbacks or [])
        super().__init__(model, data, config=config, callbacks=chosen)
        # Built by fit():
        self.plan: FreezePlan | None = None
        self.mixer: MixupCutmix | None = None
        self.loss_fn: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Scheduler | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.forward_model: nn.Module = model  # the model as called in training (DDP, compiled)
        self.added_groups: list[list[str]] = []  # names of the parameters each unfreeze added
        self.stop_signal: str | None = None  # set by SIGINT/SIGTERM: save and stop at the next step
        # How to resume, shown after an interruption ({run_dir}, {checkpoint}); the CLI and
        # FineTuner put their own form here.
        self.resume_hint = "trainer.fit(resume={checkpoint!r})"
        self.complete_hint = (
            "The run in {run_dir} is complete ({epochs}); to train longer, "
            "call fit(epochs=N) with a larger N."
        )
        self.totals: EpochTotals | None = None  # the training epoch's running sums
        self.lr_search: LRFindResult | None = None  # the range test run for optim.lr = "find"

    # ----------------------------------------------------------------- set-up
    def _setup(self, resume: str | Path | None) -> None:
        """Build every part, restore a checkpoint, then open the run directory and write to it.

        Every part is built, every name checked and the checkpoint restored before anything is
        written, so a bad option or a refused resume leaves the disk as it was.
        """
        cfg = self.config
        if init_distributed(self.dist, self.device):
            atexit.register(teardown)
        path, state = load_resume_state(resume, cfg.train.output_dir, self.model)
        target = resume_target(cfg.train, path, output_dir_given=self.output_dir_given, check=self.is_main)
        if state is None:
            seed_everything(cfg.train.seed + self.dist.rank)  # dropout differs across ranks
        configure_determinism(cfg.train.deterministic, self.device)
        self._prepare_model_and_loaders()
        setup.probe_model(self.model, self.data, self.device)
        setup.check_metrics(cfg.train.metrics, self.data.num_classes)
        if cfg.train.sync_batchnorm and self.dist.is_distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.mixer = setup.build_mixer(cfg.optim, self.data.num_classes)
        self.loss_fn = setup.build_loss(cfg.optim, self.mixer)
        self.plan = setup.resolve_plan(self.model, cfg.finetune)
        self.added_groups = []
        self.lr_search = lr_search.find_lr_for_run(self, state)  # optim.lr = "find"
        cfg = self.config
        self.optimizer = setup.build_optimizer(self.model, self.plan, cfg.optim)
        self.scheduler = setup.build_scheduler(
            self.optimizer, cfg, len(self.loaders.train), has_val=self.data.val is not None
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_scaler)
        # Warmup (decay ramps up from 0.1) keeps early evaluations from mixing in the random init.
        self.ema = ModelEma(self.model, decay=cfg.optim.ema, warmup=True) if cfg.optim.ema else None
        self._wrap_model()
        self.config = describe_run(cfg, self.model, self.data, self.plan, str(target.resolve()))
        if state is not None:
            check_same_run(state.get("config") or {}, self.config.to_dict(), path)
            check_same_data(state.get("data_meta") or {}, self.data.meta(), where=str(path))
            restore_training_state(self, state)
        barrier()  # every rank has checked and built everything before rank 0 writes
        if state is not None and target == path.parent:
            self.run_dir = RunDir.for_resume(target, write=self.is_main)
        else:
            self.run_dir = RunDir.create(target, overwrite=cfg.train.overwrite, write=self.is_main)
        if self.is_main:
            with self.run_dir.released_on_error():  # a failed start keeps no lock
                self._write_run_files()
        barrier()

    def _wrap_model(self) -> None:
        """DDP over the trainable parameters (rebuilt after an unfreeze), then torch.compile."""
        wrapped = wrap_ddp(self.model, self.device)
        self.forward_model = torch.compile(wrapped) if self.config.train.compile else wrapped

    def add_param_group(self, names: list[str]) -> None:
        """Give newly unfrozen parameters to the optimizer (the scheduler drives them from now on)."""
        for group in setup.trainable_groups(self.model, self.plan, self.config.optim, only=set(names)):
            self.scheduler.add_param_group(group)
        self.added_groups.append(list(names))
        if self.dist.is_distributed:
            self._wrap_model()  # DDP registers only the parameters trainable at wrap time

    def _write_run_files(self) -> None:
        setup.write_run_files(self.run_dir, self.config, self.plan, self.data, self.model)
        if self.lr_search is not None:
            lr_search.save_run_lr_search(self.lr_search, self.run_dir, plots=self.config.train.plots)

    def lr_find(self, **options: Any) -> LRFindResult:
        """Run the learning-rate range test with this run's loader, loss, freezing and optimizer.

        The optimizer is built as :meth:`fit` builds it (the same parameter groups, weight
        decay and discriminative multipliers) and the freezing strategy is applied, so
        ``result.suggested`` is a base lr for this run (``optim.lr``). The weights, the
        optimizer and the RNG are left as they were. ``optim.lr = "find"`` does this by itself.

        Args:
            **options: ``start_lr``, ``end_lr``, ``num_steps``, ``plot_path``
                (see :func:`finetune_kit.lr_find`).

        Returns:
            The :class:`~finetune_kit.optim.LRFindResult`.

        Example:
            >>> import tempfile, finetune_kit as fk
            >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
            ...                           train_size=64, test_size=8)
            >>> net = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
            >>> trainer = fk.Trainer(net, data, batch_size=16, output_dir=tempfile.mkdtemp())
            >>> 0 < trainer.lr_find(num_steps=20).suggested < 10
            True
        """
        return lr_search.find_lr(self, **options)

    # ------------------------------------------------------------------ fit
    def fit(self, resume: str | Path | None = None, *, epochs: int | None = None) -> History:
        """Train for ``epochs`` (or ``max_steps``), validating after every epoch.

        Called again on the same Trainer, ``fit`` continues where the last call stopped (after
        an interruption, or up to a larger ``epochs``); a run that is complete says so.

        Args:
            resume: a checkpoint path, a run directory, or ``"last"`` (the ``last.ckpt`` of
                ``output_dir``). Training continues exactly where the checkpoint was taken.
            epochs: train up to this many epochs in all (default: ``config.train.epochs``).

        Returns:
            The :class:`~finetune_kit.training.state.History` of epoch rows. ``history.interrupted`` is
            True when a SIGINT/SIGTERM stopped the run (a checkpoint to resume was saved).

        Raises:
            OutputDirError: the run directory exists (and neither resume nor overwrite given).
            CheckpointError: the checkpoint to resume is missing, corrupted or of another model.
            TrainingError: the loss became NaN or infinite.
        """
        if epochs is not None:
            setup.check_epochs(epochs)
        if self.optimizer is None:
            if epochs is not None:
                self.config = setup.with_epochs(self.config, epochs)
            self._setup(resume)
        else:
            setup.continue_fit(self, resume, epochs)
        if self.state.epoch >= self.config.train.epochs:
            if self.is_main:
                done = f"{self.state.epoch} epoch{'s' if self.state.epoch != 1 else ''}"
                print(
                    fill_hint(self.complete_hint, run_dir=str(self.run_dir.root), epochs=done),
                    file=sys.stderr,
                )
            return self.history
        with self.cpu_threads():  # train.threads, announced before the progress bars start
            self.callbacks.fire("fit_start", self)
            with StopOnSignal(self), self.run_dir.held():  # one writer per run directory
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
                    derive_seed("mix", cfg.seed, self.state.epoch, self.state.batch)
                )
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
        return self.state.batch % self.config.optim.grad_accum == 0 or self.state.batch == len(
            self.loaders.train
        )

    def _signal_received(self, force_check: bool = True) -> bool:
        """Whether SIGINT/SIGTERM arrived; under DDP all ranks agree (checked every log_every steps)."""
        if not self.dist.is_distributed:
            return self.stop_signal is not None
        if not force_check and self.state.global_step % self.config.train.log_every:
            return False  # ranks act on a signal only together, at the agreed steps
        self.stop_signal = agree_on_stop(self.stop_signal, self.device)
        return self.stop_signal is not None

    def running_loss(self) -> float:
        """Mean training loss of the current epoch so far, on this process (reads the device)."""
        return self.totals.means()[0] if self.totals is not None else float("nan")

    def _validate(self) -> None:
        train_loss, train_accuracy = self.totals.means(reduce=all_reduce_sum)
        position = {"epoch": self.state.epoch + 1, "step": self.state.global_step}
        losses = {"train_loss": train_loss, "train_accuracy": train_accuracy}
        self.state.metrics = {**position, **losses, **self.state.metrics}  # the row's first columns
        if not math.isfinite(self.state.metrics["train_loss"]):
            raise TrainingError(
                f"The mean training loss of epoch {self.state.epoch + 1} is not finite. "
                "Lower the learning rate, add grad_clip, or use precision='32'."
            )
        # The highest rate: the head's under discriminative lr (each group's is logged by name).
        self.state.metrics["lr"] = max(float(g["lr"]) for g in self.optimizer.param_groups)
        if self.precision.use_scaler:
            self.state.metrics["skipped_steps"] = self.state.skipped_steps
        if self.loaders.val is not None:
            values = self._evaluate_loader(self.loaders.val)
            self.state.metrics.update(
                {f"val_{k}": v for k, v in values.items() if isinstance(v, (int, float))}
            )
        self.callbacks.fire("validation_end", self)

    def _finish_epoch(self) -> None:
        self.history.append(self.state.metrics)
        self.state.epoch += 1
        self.state.batch = 0
        self.totals = None
        self.callbacks.fire("epoch_end", self)
        self.state.metrics = {}

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
            how = fill_hint(self.resume_hint, run_dir=str(self.run_dir.root), checkpoint=str(path))
            print(
                f"\nStopped by {self.stop_signal}: checkpoint saved to {path}.\nResume with: {how}",
                file=sys.stderr,
            )

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, name: str, *, weights_only: bool = False) -> Path:
        """Write the full training state (or only the weights) to ``name`` in the run directory.

        Under DDP every rank calls this (each contributes its RNG state); rank 0 writes.
        """
        path = self.run_dir.path(name)
        save_training_state(self, path, weights_only=weights_only)
        return path

    def link_checkpoint(self, source: str, target: str) -> None:
        """Make checkpoint ``target`` the same file as ``source`` (a hard link, or a copy)."""
        if self.is_main:
            ckpt.link_checkpoint(self.run_dir.path(source), self.run_dir.path(target))
        barrier()
