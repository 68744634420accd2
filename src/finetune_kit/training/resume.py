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
from finetune_kit.config.sections import TrainConfig
from finetune_kit.errors import CheckpointError, OutputDirError
from finetune_kit.models.info import INFO_ATTR, ModelInfo
from finetune_kit.runtime.distributed import all_gather_objects, barrier
from finetune_kit.storage import checkpoint as ckpt
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.training.state import EpochTotals, History

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = [
    "CHECKPOINT_KEYS",
    "check_resume_compatible",
    "check_same_run",
    "load_resume_state",
    "restore_training_state",
    "resume_target",
    "save_training_state",
    "training_state",
    "weights_state",
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


def weights_state(trainer: Trainer) -> dict[str, Any]:
    """What a best or top-k checkpoint holds: the weights (and EMA weights) of one epoch with
    what evaluation, export and prediction need (model info, data metadata, freezing, config),
    not the optimizer and loop state, which only ``last.ckpt`` needs."""
    return {
        "format": ckpt.CHECKPOINT_FORMAT,
        "version": __version__,
        "kind": "weights",
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "freezing": trainer.plan.state_dict(),
        "position": {"epoch": trainer.state.epoch, "global_step": trainer.state.global_step},
        "history": [dict(row) for row in trainer.history.rows],
        "config": trainer.config.to_dict(),
        "data_meta": trainer.data.meta(),
        "model_info": _info_dict(trainer.model),
        "model_class": f"{type(trainer.model).__module__}.{type(trainer.model).__qualname__}",
    }


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
        "model_info": _info_dict(trainer.model),
        "model_class": f"{type(trainer.model).__module__}.{type(trainer.model).__qualname__}",
    }


def save_training_state(trainer: Trainer, path: Path, *, weights_only: bool = False) -> None:
    """Write ``trainer``'s checkpoint to ``path`` atomically (its weights only, if asked).

    Under DDP every rank calls this (each contributes its RNG state); rank 0 writes.
    """
    if weights_only:
        if trainer.is_main:
            ckpt.save_checkpoint(weights_state(trainer), path)
    else:
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


def _info_dict(model: nn.Module) -> dict[str, Any] | None:
    """The model's ModelInfo as plain data; None for a custom module."""
    info = getattr(model, INFO_ATTR, None)
    return info.to_dict() if isinstance(info, ModelInfo) else None


def check_resume_compatible(state: dict[str, Any], model: nn.Module, path: Path) -> None:
    """Refuse a checkpoint written for another architecture or number of classes.

    Models from ``create_model`` are compared by name and class count, custom modules by class
    and by the names and shapes of their weights.

    Raises:
        CheckpointError: naming both models and the fix.
    """
    saved = state.get("model_info") or {}
    info = _info_dict(model)
    if (
        saved
        and info
        and (saved.get("name"), saved.get("num_classes")) != (info["name"], info["num_classes"])
    ):
        raise CheckpointError(
            f"Cannot resume from {path}: it was written for model {saved.get('name')!r} with "
            f"{saved.get('num_classes')} classes, but this run has {info['name']!r} with "
            f"{info['num_classes']} classes. Resume with the same model, or start a new run."
        )
    weights = state.get("model")
    if isinstance(weights, dict):
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        theirs = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
        if mine != theirs:
            differ = sorted(set(mine) ^ set(theirs)) or sorted(k for k in mine if mine[k] != theirs[k])
            raise CheckpointError(
                f"Cannot resume from {path}: its weights do not fit this model "
                f"({state.get('model_class') or 'the saved model'} vs {type(model).__name__}; "
                f"first differences: {differ[:3]}). Resume with the "
                "model the run was trained with, or start a new run."
            )


# Config keys that decide the course of training: they must not change on resume.
_RESUME_KEYS = {
    "data": ("dataset", "val_fraction", "preset", "channels", "classes", "limit", "seed", "options"),
    "model": ("name", "small_input", "dropout", "options"),
    "loader": ("batch_size", "loader", "augment"),
    "optim": None,  # all of it
    "finetune": None,
    "train": ("precision", "seed", "deterministic", "sync_batchnorm", "tta"),
}


def check_same_run(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume with settings that change the course of the run.

    The data, model, optimizer, schedule, freezing and numerics must be those of the run;
    where it writes, on which device, how often it logs, and the number of epochs may change.

    Args:
        saved: the checkpoint's ``config`` (plain data).
        current: the resuming run's ``RunConfig.to_dict()``.
        path: the checkpoint, for the message.

    Raises:
        CheckpointError: naming every key that differs, with both values.
    """
    changed = []
    for section, keys in _RESUME_KEYS.items():
        old, new = saved.get(section) or {}, current.get(section) or {}
        for key in keys or sorted(set(old) | set(new)):
            if _plain(old.get(key)) != _plain(new.get(key)):
                changed.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    if changed:
        raise CheckpointError(
            f"Cannot resume from {path} with other settings: {'; '.join(changed)}. Resume with the "
            "run's own settings (finetune-kit train --resume RUN, without --config), or start a "
            "new run with these."
        )


def _plain(value: Any) -> Any:
    """Tuples as lists and ints as floats where they compare equal, for config comparison."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load_resume_state(
    resume: str | Path | None, output_dir: str, model: nn.Module
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint to resume (``"last"``: the output directory's) and its state, checked
    against ``model``; ``(None, None)`` for a new run."""
    if resume is None:
        return None, None
    path = ckpt.find_checkpoint(output_dir if str(resume) == "last" else resume)
    state = ckpt.load_checkpoint(path, map_location="cpu")
    if state.get("kind") == "weights":
        raise CheckpointError(
            f"{path} holds the weights of one epoch (a best or top-k checkpoint), not a training "
            f"state to resume. Resume from the run's last.ckpt ({path.parent / 'last.ckpt'}), or "
            "start a new run from these weights (weights= / fk.load_weights)."
        )
    check_resume_compatible(state, model, path)
    return path, state


def resume_target(
    train: TrainConfig, checkpoint: Path | None, *, output_dir_given: bool, check: bool = True
) -> Path:
    """Where a run writes, checked (nothing written): a new directory, or the resumed one.

    A resume continues in the checkpoint's run directory, unless an ``output_dir`` other than
    that one was given: then the resumed run writes there and the old one is left as it was. A
    checkpoint outside a run directory is never resumed in place.

    Raises:
        OutputDirError: the directory may not be used (see :meth:`RunDir.check_available`), or
            the checkpoint is not inside a run directory and no other one was given.
    """
    wanted = Path(train.output_dir)
    if checkpoint is not None:
        home = checkpoint.parent
        if not output_dir_given or wanted.resolve() == home.resolve():
            if not RunDir.is_run_dir(home):
                raise OutputDirError(
                    f"{checkpoint} is not inside a run directory (no config.toml and classes.json "
                    f"beside it), so resuming in place would write into {home}. Give the resumed "
                    "run its own directory: output_dir=... (--output-dir)."
                )
            return home
    if check:
        RunDir.check_available(wanted, overwrite=train.overwrite)
    return wanted
