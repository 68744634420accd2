"""What a run is made of, built before its first step: model placement, loaders, mixer, loss,
optimizer, scheduler, and the files that describe the run.

The Trainer calls these in :meth:`~finetune_kit.Trainer.fit`, before the run directory exists,
so a bad name or value leaves nothing behind.

Example:
    >>> from finetune_kit.config import OptimConfig
    >>> build_mixer(OptimConfig(), num_classes=10) is None
    True
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetune_kit.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    PlotCallback,
    ProgressBar,
    TextLogger,
    Timer,
    bars_wanted,
    create_loggers,
    plots_available,
)
from finetune_kit.config import SECTIONS, TRAINER_SECTIONS, RunConfig, route_options, save_config
from finetune_kit.config.sections import FinetuneConfig, LoaderConfig, OptimConfig
from finetune_kit.data import DataBundle, make_loaders
from finetune_kit.data.loaders import Loaders
from finetune_kit.data.mixing import MixupCutmix
from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.freezing import FreezePlan, apply_strategy, current_plan
from finetune_kit.metrics import Metrics
from finetune_kit.models import unwrap_model
from finetune_kit.models.info import INFO_ATTR
from finetune_kit.models.load import load_report_of
from finetune_kit.optim import OPTIMIZERS, create_loss, create_optimizer, create_scheduler, param_groups
from finetune_kit.optim.schedulers import Scheduler
from finetune_kit.runtime.distributed import DistEnv
from finetune_kit.storage.run_dir import RunDir

__all__ = [
    "build_loaders",
    "build_loss",
    "build_mixer",
    "build_optimizer",
    "build_scheduler",
    "check_epochs",
    "check_metrics",
    "default_callbacks",
    "eval_batch_size",
    "place_model",
    "probe_model",
    "resolve_plan",
    "route_trainer_options",
    "trainable_groups",
    "write_run_files",
]


def route_trainer_options(config: RunConfig, options: dict[str, Any]) -> RunConfig:
    """Flat Trainer keywords into ``config``: section keys by name, the rest to the optimizer.

    ``Trainer(..., optimizer="adamw", betas=(0.9, 0.99), eps=1e-6)`` puts ``betas`` and ``eps``
    in ``optim.optimizer_options``; they are checked against the optimizer's own signature.

    Raises:
        ConfigError: an option neither a config section nor the optimizer takes.
    """
    owned = {f.name for section in TRAINER_SECTIONS for f in dataclasses.fields(SECTIONS[section])}
    name = options.get("optimizer", config.optim.optimizer)
    extra = {k: v for k, v in options.items() if k not in owned}
    if extra and name in OPTIMIZERS:
        accepted = [*(OPTIMIZERS.options(name) or []), "betas", "eps"]
        passed = {k: v for k, v in extra.items() if k in accepted}
        if passed:
            options = {k: v for k, v in options.items() if k not in passed}
            merged = {**config.optim.optimizer_options, **passed}
            config = dataclasses.replace(
                config, optim=dataclasses.replace(config.optim, optimizer_options=merged)
            )
    return route_options(config, options)


def resolve_plan(model: nn.Module, finetune: FinetuneConfig) -> FreezePlan:
    """The freezing plan of a run: the configured strategy, else what the model comes with.

    With ``finetune.strategy`` unset, a plan applied with ``apply_strategy`` is kept, and
    ``requires_grad`` flags set by hand are kept (as ``train_only`` over the modules that
    train); a model with nothing frozen trains fully.

    Raises:
        ConfigError: a module has some parameters frozen and others not (not expressible), or
            strategy options are given without a strategy.
    """
    if finetune.strategy is None and finetune.options:
        raise ConfigError(
            f"Strategy options {dict(finetune.options)} are given but no strategy takes them; "
            "set the strategy they belong to (e.g. strategy='freeze_first', options={'n': 2}; "
            "--set finetune.strategy=freeze_first), or remove the options."
        )
    if finetune.strategy is not None:
        return apply_strategy(model, finetune.strategy, bn_policy=finetune.bn_policy, **finetune.options)
    plan = current_plan(model)
    if plan is not None:
        return plan
    if all(p.requires_grad for p in model.parameters()):
        return apply_strategy(model, "full", bn_policy=finetune.bn_policy)
    return apply_strategy(model, "train_only", bn_policy=finetune.bn_policy, names=_trainable_modules(model))


def _trainable_modules(model: nn.Module) -> list[str]:
    """Modules whose own parameters all train, for a model frozen by hand."""
    names = []
    for name, module in model.named_modules():
        flags = {p.requires_grad for p in module.parameters(recurse=False)}
        if len(flags) > 1:
            raise ConfigError(
                f"Module {name or type(model).__name__!r} has some parameters frozen and others "
                "not; the Trainer keeps frozen modules as they are, not single tensors. Freeze or "
                "unfreeze whole modules, or pass a strategy (e.g. strategy='train_only', "
                "options={'names': [...]})."
            )
        if flags == {True}:
            names.append(name)
    if "" in names:
        raise ConfigError(
            "The model's own top-level parameters train while others are frozen; "
            "pass a strategy (e.g. strategy='train_only') to say what trains."
        )
    return names


def check_epochs(epochs: int) -> None:
    """``fit(epochs=...)`` must be a whole number of epochs, at least 1."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"fit(epochs=...) must be an integer >= 1 (epochs in all), got {epochs!r}.")


def with_epochs(config: RunConfig, epochs: int) -> RunConfig:
    """``config`` with ``train.epochs`` set to ``epochs``."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))


def continue_fit(trainer: Any, resume: str | Path | None, epochs: int | None) -> None:
    """A second ``fit`` on a Trainer: carry on from where the first one stopped.

    Raises:
        ConfigError: ``resume`` was given (a Trainer that has trained continues itself).
    """
    if resume is not None:
        raise ConfigError(
            "This Trainer has trained already; fit() continues it. To resume a "
            "checkpoint, use a new Trainer: Trainer(model, data, ...).fit(resume=...)."
        )
    trainer.stop_signal, trainer.state.stop_reason, trainer.history.interrupted = None, None, False
    if epochs is not None and epochs != trainer.config.train.epochs:
        trainer.config = with_epochs(trainer.config, epochs)
        state = trainer.scheduler.state_dict()  # the schedule stretches to the new length
        trainer.scheduler = build_scheduler(
            trainer.optimizer,
            trainer.config,
            len(trainer.loaders.train),
            has_val=trainer.data.val is not None,
        )
        trainer.scheduler.load_state_dict(state)
        if trainer.is_main:
            trainer._write_run_files()


def check_metrics(names: list[str], num_classes: int) -> None:
    """Build the validation metrics once, so a bad name or option fails before any training."""
    Metrics(list(dict.fromkeys(["loss", "accuracy", *names])), num_classes, device="cpu")


def probe_model(model: nn.Module, data: DataBundle, device: torch.device) -> None:
    """One forward pass of zeros: a model that does not fit the data fails before training.

    Models from ``create_model`` are checked from their ModelInfo instead (no forward pass).

    Raises:
        ShapeError: the forward pass fails, or the output is not ``(N, num_classes)``.
    """
    if hasattr(model, INFO_ATTR):
        return
    x = torch.zeros(2, data.in_channels, *data.input_size, device=device)
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ShapeError(
            f"The model cannot take this data's images (batches of shape (N, {data.in_channels}, "
            f"{data.input_size[0]}, {data.input_size[1]})): {str(exc).splitlines()[0]}. Build it "
            "for these inputs."
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, data.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(
            f"The model returns {shape} for 2 images; a classifier for {data.name!r} must return "
            f"logits of shape (N, {data.num_classes}). Give it {data.num_classes} outputs."
        )


def default_callbacks(config: RunConfig, *, has_val: bool, given: list[Callback]) -> list[Callback]:
    """The standard callbacks, each unless one of the same class is ``given``, then ``given``.

    ``train.verbosity`` and ``train.progress`` choose between progress bars and one plain line
    per epoch on the console; ``train.loggers`` names the metric files; ``train.plots`` adds
    the :class:`~finetune_kit.PlotCallback` (``None``: when matplotlib is installed).
    """
    train = config.train
    bars = bars_wanted(train.progress, train.verbosity)
    console = "none" if train.verbosity == 0 else "summary" if bars else "all"
    defaults: list[Callback] = [
        Timer(),
        LearningRateMonitor(),
        NaNGuard(check_every=train.log_every),
        *create_loggers(train.loggers),
        TextLogger(console=console),
        ModelCheckpoint(
            monitor="val_accuracy" if has_val else None, mode="max", every_n_steps=train.checkpoint_every
        ),
    ]
    if bars:
        defaults.insert(0, ProgressBar())
    if train.plots or (train.plots is None and plots_available()):
        defaults.append(PlotCallback())  # train.plots = true without matplotlib: its error says so
    have = {type(cb) for cb in given}
    return [cb for cb in defaults if type(cb) not in have] + list(given)


def place_model(model: nn.Module, device: torch.device, channels_last: bool | None) -> bool:
    """Move ``model`` to ``device`` (channels_last on CUDA by default); returns channels_last."""
    if channels_last is None:
        channels_last = device.type == "cuda"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return channels_last


def build_loaders(
    data: DataBundle, config: RunConfig, device: torch.device, dist: DistEnv, channels_last: bool
) -> Loaders:
    """The train/val/test loaders of ``data`` for this process (its shard under DDP)."""
    cfg = config.loader
    return make_loaders(
        data,
        batch_size=cfg.batch_size,
        device=device,
        loader=cfg.loader,
        augment=cfg.augment,
        seed=config.train.seed,
        num_workers=cfg.num_workers,
        eval_batch_size=eval_batch_size(cfg),
        channels_last=channels_last,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def eval_batch_size(loader: LoaderConfig) -> int:
    """The validation/test batch: ``eval_batch_size``, or twice the training batch.

    Evaluation keeps no activations for a backward pass, so a larger batch fits in the same
    memory and makes fewer, larger (faster) steps.

    Example:
        >>> eval_batch_size(LoaderConfig(batch_size=128)), eval_batch_size(LoaderConfig(eval_batch_size=1000))
        (256, 1000)
    """
    return loader.eval_batch_size or 2 * loader.batch_size


def build_mixer(optim: OptimConfig, num_classes: int) -> MixupCutmix | None:
    """Mixup/cutmix on the device, or None when both alphas are 0."""
    if optim.mixup_alpha == 0 and optim.cutmix_alpha == 0:
        return None
    return MixupCutmix(
        optim.mixup_alpha,
        optim.cutmix_alpha,
        label_smoothing=optim.label_smoothing,
        num_classes=num_classes,
        generator=torch.Generator(),
    )


def build_loss(optim: OptimConfig, mixer: MixupCutmix | None) -> nn.Module:
    """The training loss; with mixup/cutmix the soft targets already carry the label smoothing."""
    smoothing = 0.0 if mixer is not None else optim.label_smoothing
    return create_loss(optim.loss, label_smoothing=smoothing)


def trainable_groups(
    model: nn.Module, plan: FreezePlan, optim: OptimConfig, only: set[str] | None = None
) -> list[dict[str, Any]]:
    """Parameter groups of the trainable parameters (``only`` these names, when given)."""
    groups = param_groups(
        model,
        weight_decay=optim.weight_decay,
        no_decay_norm_bias=optim.no_decay_norm_bias,
        lr_multipliers=plan.lr_multipliers(),
    )
    if only is None:
        return groups
    wanted = {id(p) for n, p in model.named_parameters() if n in only}
    kept = [dict(g, params=[p for p in g["params"] if id(p) in wanted]) for g in groups]
    return [g for g in kept if g["params"]]


def build_optimizer(model: nn.Module, plan: FreezePlan, optim: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer over the parameters the freezing plan trains, at their lr multipliers."""
    return create_optimizer(
        trainable_groups(model, plan, optim),
        optim.optimizer,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        momentum=optim.momentum,
        nesterov=optim.nesterov,
        **optim.optimizer_options,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: RunConfig, batches_per_epoch: int, has_val: bool
) -> Scheduler:
    """The lr schedule, stepped once per optimizer step (or per epoch, for ``plateau``)."""
    optim = config.optim
    if optim.scheduler == "plateau" and not has_val:
        raise ConfigError(
            "scheduler='plateau' follows the validation loss, but there is no "
            "validation set: set data.val_fraction > 0 or choose another scheduler."
        )
    steps = math.ceil(batches_per_epoch / optim.grad_accum)
    return create_scheduler(
        optimizer,
        optim.scheduler,
        epochs=config.train.epochs,
        steps_per_epoch=steps,
        warmup_epochs=optim.warmup_epochs,
        **optim.scheduler_options,
    )


def write_run_files(
    run_dir: RunDir, config: RunConfig, plan: FreezePlan, data: DataBundle, model: nn.Module
) -> None:
    """``config.toml``, ``trainable.txt``, ``split.json``, ``classes.json``, and ``weights.txt``.

    ``weights.txt`` is the full load report of the weights the model started from (only when
    weights were loaded); ``train.log`` has its one-line summary.
    """
    run_config = dataclasses.replace(config)
    run_config.train = dataclasses.replace(run_config.train, output_dir=str(run_dir.root))
    report = load_report_of(unwrap_model(model))
    with run_dir.writing():
        save_config(run_config, run_dir.path("config.toml"))
        run_dir.path("trainable.txt").write_text(plan.summary().table() + "\n", encoding="utf-8")
        data.save_split(run_dir.path("split.json"))
        data.save_class_index(run_dir.path("classes.json"))
        if report is not None:
            run_dir.path("weights.txt").write_text(f"{report.summary()}\n\n{report}\n", encoding="utf-8")
