"""What a checkpoint holds of a training run, and how a Trainer is put back in that state.

A checkpoint taken anywhere (end of an epoch, every N steps, on SIGINT) holds everything the
loop depends on: weights, optimizer, scheduler, scaler and EMA states, the freezing state and the
parameter groups added after unfreezes (in order), callback states, the data position, the
epoch's running sums, the history, and the RNG state of every rank. Restoring it makes the rest
of the run bit-identical to an uninterrupted one (CPU, ``deterministic=True``).

Example:
    >>> sorted(CHECKPOINT_KEYS)[:3]
    ['added_groups', 'callbacks', 'config']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from finetune_kit._version import __version__
from finetune_kit.errors import CheckpointError
from finetune_kit.models import model_info
from finetune_kit.runtime.distributed import all_gather_objects, barrier
from finetune_kit.storage import checkpoint as ckpt
from finetune_kit.training.state import EpochTotals, History

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = [
    "CHECKPOINT_KEYS",
    "check_resume_compatible",
    "restore_training_state",
    "save_training_state",
    "training_state",
]

CHECKPOINT_KEYS = (
    "format",
    "version",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "ema",
    "freezing",
    "added_groups",
    "callbacks",
    "position",
    "running",
    "history",
    "rng",
    "rng_per_rank",
    "config",
    "data_meta",
    "model_info",
)


def training_state(trainer: Trainer, rng_per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything a checkpoint of ``trainer`` holds (see the module docstring)."""
    s = trainer.state
    return {
        "format": ckpt.CHECKPOINT_FORMAT,
        "version": __version__,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "freezing": trainer.plan.state_dict(),
        "added_groups": [list(names) for names in trainer.added_groups],
        "callbacks": trainer.callbacks.state_dict(),
        "position": {
            "epoch": s.epoch,
            "batch": s.batch,
            "global_step": s.global_step,
            "skipped_steps": s.skipped_steps,
        },
        "running": trainer.totals.state() if trainer.totals is not None else None,
        "history": [dict(row) for row in trainer.history.rows],
        "rng": rng_per_rank[0],
        "rng_per_rank": rng_per_rank,
        "config": trainer.config.to_dict(),
        "data_meta": trainer.data.meta(),
        "model_info": model_info(trainer.model).to_dict(),
    }


def save_training_state(trainer: Trainer, path: Path) -> None:
    """Write ``trainer``'s checkpoint to ``path`` atomically.

    Under DDP every rank calls this (each contributes its RNG state); rank 0 writes.
    """
    rng_per_rank = all_gather_objects(ckpt.capture_rng_state())
    if trainer.is_main:
        ckpt.save_checkpoint(training_state(trainer, rng_per_rank), path)
    barrier()


def restore_training_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put a freshly set-up ``trainer`` back in the state a checkpoint recorded.

    The freezing state and the added parameter groups are restored before the optimizer state,
    so the optimizer has the same groups, in the same order, as when it was saved.

    Raises:
        CheckpointError: the checkpoint does not fit the model, strategy or optimizer.
    """
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.plan.load_state_dict(state["freezing"])
        for names in state.get("added_groups", []):
            trainer.add_param_group(names)
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"The checkpoint does not fit this model/optimizer: {' '.join(str(exc).split())[:300]} "
            "Resume with the same model, strategy and optimizer as the original run."
        ) from None
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    if trainer.ema is not None and state.get("ema") is not None:
        trainer.ema.load_state_dict(state["ema"])
    trainer.callbacks.load_state_dict(state.get("callbacks", {}))
    pos = state["position"]
    trainer.state.epoch, trainer.state.batch = pos["epoch"], pos["batch"]
    trainer.state.global_step = pos["global_step"]
    trainer.state.skipped_steps = pos.get("skipped_steps", 0)
    running = state.get("running")
    trainer.totals = EpochTotals(trainer.device, running) if running is not None else None
    trainer.history = History(state.get("history", []))
    per_rank = state.get("rng_per_rank") or [state["rng"]]
    same_world = len(per_rank) == trainer.dist.world_size
    ckpt.restore_rng_state(per_rank[trainer.dist.rank] if same_world else state["rng"])


def check_resume_compatible(state: dict[str, Any], model: nn.Module, path: Path) -> None:
    """Refuse a checkpoint written for another architecture or number of classes.

    Raises:
        CheckpointError: naming both models and the fix.
    """
    info = model_info(model)
    saved = state.get("model_info", {})
    if saved and (saved.get("name"), saved.get("num_classes")) != (info.name, info.num_classes):
        raise CheckpointError(
            f"Cannot resume from {path}: it was written for model {saved.get('name')!r} with "
            f"{saved.get('num_classes')} classes, but this run has {info.name!r} with "
            f"{info.num_classes} classes. Resume with the same model, or start a new run."
        )
