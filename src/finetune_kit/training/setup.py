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
from typing import Any

import torch
from torch import nn

from finetune_kit.callbacks import (
    Callback,
    CSVLogger,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    ProgressBar,
    Timer,
)
from finetune_kit.config import RunConfig, save_config
from finetune_kit.config.sections import LoaderConfig, OptimConfig
from finetune_kit.data import DataBundle, make_loaders
from finetune_kit.data.loaders import Loaders
from finetune_kit.data.mixing import MixupCutmix
from finetune_kit.errors import ConfigError
from finetune_kit.freezing import FreezePlan
from finetune_kit.optim import create_loss, create_optimizer, create_scheduler, param_groups
from finetune_kit.optim.schedulers import Scheduler
from finetune_kit.runtime.distributed import DistEnv
from finetune_kit.storage.run_dir import RunDir

__all__ = [
    "build_loaders",
    "build_loss",
    "build_mixer",
    "build_optimizer",
    "build_scheduler",
    "default_callbacks",
    "eval_batch_size",
    "place_model",
    "trainable_groups",
    "write_run_files",
]


def default_callbacks(config: RunConfig, *, has_val: bool, given: list[Callback]) -> list[Callback]:
    """The standard callbacks, each unless one of the same class is ``given``, then ``given``."""
    train = config.train
    defaults: list[Callback] = [
        Timer(),
        LearningRateMonitor(),
        NaNGuard(check_every=train.log_every),
        CSVLogger(),
        ModelCheckpoint(
            monitor="val_accuracy" if has_val else None, mode="max", every_n_steps=train.checkpoint_every
        ),
    ]
    if train.progress:
        defaults.insert(0, ProgressBar())
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


def write_run_files(run_dir: RunDir, config: RunConfig, plan: FreezePlan, data: DataBundle) -> str:
    """``config.toml``, ``trainable.txt``, ``split.json`` and ``classes.json``; returns the table."""
    run_config = dataclasses.replace(config)
    run_config.train = dataclasses.replace(run_config.train, output_dir=str(run_dir.root))
    summary = plan.summary().table()
    with run_dir.writing():
        save_config(run_config, run_dir.path("config.toml"))
        run_dir.path("trainable.txt").write_text(summary + "\n", encoding="utf-8")
        data.save_split(run_dir.path("split.json"))
        data.save_class_index(run_dir.path("classes.json"))
    return summary
