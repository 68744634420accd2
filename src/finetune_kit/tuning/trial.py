"""One trial: the config of a trial, its Trainer run in ``STUDY_DIR/trial-NNNN/``, its outcome.

Each trial is an ordinary run directory made by the :class:`~finetune_kit.Trainer` (config.toml,
metrics.csv, checkpoints), plus ``trial.json``: the study, the trial's number, its values and
how it ended (``running``, ``complete``, ``pruned``, ``failed`` or ``interrupted``).

Example:
    >>> from pathlib import Path
    >>> trial_dir(Path("runs/study"), 7).name
    'trial-0007'
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_kit.callbacks import Callback
from finetune_kit.config import RunConfig
from finetune_kit.errors import ConfigError, FinetuneKitError, TrainingError
from finetune_kit.storage import atomic_write_text
from finetune_kit.training import build_trainer
from finetune_kit.tuning.distributed import Coordinator
from finetune_kit.tuning.extra import require_optuna
from finetune_kit.tuning.pruning import PruningCallback
from finetune_kit.tuning.recovery import RETRY_ATTR, WORKER_ATTR, worker_id
from finetune_kit.tuning.space import SearchSpace

__all__ = ["TrialFailed", "TrialInterrupted", "TrialSettings", "run_trial", "trial_dir", "write_trial_file"]

TRIAL_FILE = "trial.json"


class TrialInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped a trial's run (its ``last.ckpt`` was saved); the study stops."""


class TrialFailed(Exception):
    """A trial that cannot give a value (its loss diverged); the study goes on."""


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares.

    Args:
        base: the config each trial starts from.
        space: the search space.
        metric: the logged metric the study optimises.
        study_dir: where the trial directories go.
        study_name: the study's name (written into ``trial.json``).
        coordinator: shares a trial with the other ranks under torchrun.
    """

    base: RunConfig
    space: SearchSpace
    metric: str
    study_dir: Path
    study_name: str
    coordinator: Coordinator


def trial_dir(study_dir: Path, number: int) -> Path:
    """The run directory of trial ``number``."""
    return study_dir / f"trial-{number:04d}"


def trial_config(settings: TrialSettings, values: dict[str, Any], number: int) -> RunConfig:
    """The base config with the trial's values, its own run directory, and no progress bars."""
    config = settings.space.apply(settings.base, values, source=f"trial {number}")
    train = dataclasses.replace(
        config.train, output_dir=str(trial_dir(settings.study_dir, number)), progress=False
    )
    return dataclasses.replace(config, train=train)


def write_trial_file(run_dir: Path, record: dict[str, Any]) -> None:
    """Write (or update) ``trial.json`` in an existing run directory."""
    if run_dir.is_dir():
        atomic_write_text(run_dir / TRIAL_FILE, json.dumps(record, indent=2, default=str) + "\n")


class _TrialStarted(Callback):
    """Writes ``trial.json`` (state ``running``) once the run directory exists."""

    main_process_only = True

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def on_fit_start(self, trainer: Any) -> None:
        write_trial_file(trainer.run_dir.root, self.record)


def run_trial(trial: Any, settings: TrialSettings) -> float:
    """The objective: train one config, report every epoch, return the metric of the last one.

    Args:
        trial: the ``optuna.Trial`` (rank 0), or ``(number, values)`` on the other ranks.
        settings: what the study's trials share.

    Returns:
        The metric after the last epoch.

    Raises:
        optuna.TrialPruned: the pruner stopped the trial.
        TrialFailed: the loss diverged.
        TrialInterrupted: a signal stopped the run.
        FinetuneKitError: a config the library refuses (the study stops).
    """
    number, values = _values(trial, settings)
    record = {"study": settings.study_name, "trial": number, "state": "running", "params": values}
    record |= {"metric": settings.metric, "run_dir": str(trial_dir(settings.study_dir, number))}
    if settings.coordinator.is_main and RETRY_ATTR in trial.user_attrs:
        record[RETRY_ATTR] = trial.user_attrs[RETRY_ATTR]
    main = trial if settings.coordinator.is_main else None
    pruning = PruningCallback(main, settings.metric, share=settings.coordinator.share)
    start = time.monotonic()
    try:
        history = _train(settings, values, number, [pruning, _TrialStarted(record)])
    except TrainingError as exc:
        _finish(record, trial, "failed", start, error=str(exc))
        raise TrialFailed(str(exc)) from None
    except FinetuneKitError as exc:
        _finish(record, trial, "failed", start, error=str(exc))
        raise
    return _outcome(history, pruning, record, trial, start)


def _values(trial: Any, settings: TrialSettings) -> tuple[int, dict[str, Any]]:
    """The trial's number and values: asked of the study on rank 0, and sent to the others."""
    if not settings.coordinator.is_main:
        return trial
    values = settings.space.suggest(trial)
    trial.set_user_attr(WORKER_ATTR, worker_id())
    settings.coordinator.share((trial.number, values))
    return trial.number, values


def _train(settings: TrialSettings, values: dict[str, Any], number: int, callbacks: list) -> Any:
    """Build the trial's Trainer (checking it has what the metric needs) and fit it."""
    trainer = build_trainer(trial_config(settings, values, number), callbacks=callbacks)
    if settings.metric.startswith("val_") and trainer.data.val is None:
        raise ConfigError(
            f"The study optimises {settings.metric}, but there is no validation set: set "
            "data.val_fraction > 0 (e.g. 0.1)."
        )
    history = trainer.fit()
    if not history.interrupted and not history.rows:
        raise ConfigError(
            f"Trial {number} stopped before the end of its first epoch (train.max_steps = "
            f"{trainer.config.train.max_steps}), so it has no {settings.metric}; raise or remove max_steps."
        )
    return history


def _outcome(history: Any, pruning: PruningCallback, record: dict, trial: Any, start: float) -> float:
    """Record how the run ended; the value of a complete trial, else the matching exception."""
    record["epochs"] = len(history)
    if history.interrupted:
        _finish(record, trial, "interrupted", start, reason=history.stop_reason)
        raise TrialInterrupted(history.stop_reason)
    if pruning.pruned_at is not None:
        record["value"] = pruning.last_value
        _finish(record, trial, "pruned", start, reason=history.stop_reason)
        raise require_optuna().TrialPruned(history.stop_reason)
    record["value"] = value = float(history.rows[-1][record["metric"]])
    _finish(record, trial, "complete", start)
    return value


def _finish(record: dict, trial: Any, state: str, start: float, **extra: Any) -> None:
    record.update(state=state, seconds=round(time.monotonic() - start, 1), **extra)
    if not isinstance(trial, tuple):  # rank 0 records; the other ranks only train
        trial.set_user_attr("epochs", record.get("epochs", 0))
        trial.set_user_attr("seconds", record["seconds"])
        if "error" in extra:
            trial.set_user_attr("error", " ".join(str(extra["error"]).split())[:500])
        write_trial_file(Path(record["run_dir"]), record)
