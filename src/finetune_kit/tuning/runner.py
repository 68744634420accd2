"""``tune``: run a study, one Trainer run per trial, resumable and shared between workers.

The study is checked in full before its first trial. Each worker (a process running
:func:`tune` on the same storage and study name) then runs trials one at a time while fewer
than ``n_trials`` are finished or running; trials of all workers count, so several workers
share the work and every trial runs once. Ctrl-C or SIGTERM stops the running trial cleanly
(its ``last.ckpt`` is saved), queues its values to run again and leaves the study as it was;
running the same command again continues it.

Example:
    >>> import tempfile
    >>> import finetune_kit as fk
    >>> config = fk.RunConfig.from_dict({
    ...     "data": {"dataset": "fake", "val_fraction": 0.25, "options": {"train_size": 32,
    ...              "test_size": 8, "in_channels": 1, "image_size": 16}},
    ...     "model": {"name": "lenet", "options": {"input_size": 16}},
    ...     "train": {"epochs": 1, "device": "cpu", "output_dir": tempfile.mkdtemp() + "/study"}})
    >>> result = tune(config, {"optim.lr": {"low": 0.01, "high": 0.1, "log": True}},
    ...               n_trials=2, verbose=False)
    >>> [row.state for row in result.leaderboard]
    ['complete', 'complete']
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune_kit.config import RunConfig
from finetune_kit.errors import ConfigError
from finetune_kit.tuning.best import retrain
from finetune_kit.tuning.config_file import load_tune_config
from finetune_kit.tuning.distributed import Coordinator
from finetune_kit.tuning.extra import require_optuna
from finetune_kit.tuning.leaderboard import Row, leaderboard
from finetune_kit.tuning.recovery import find_dead_trials, mark_failed, requeue, retried
from finetune_kit.tuning.space import SearchSpace
from finetune_kit.tuning.storage import create_pruner, open_storage, open_study, public_url, storage_url
from finetune_kit.tuning.study_dir import check_claim, claim, write_outputs
from finetune_kit.tuning.trial import (
    TrialFailed,
    TrialSettings,
    run_trial,
    trial_dir,
    write_trial_file,
)
from finetune_kit.tuning.validate import check_study, direction_of

__all__ = ["TuneResult", "tune"]


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        study: the ``optuna.Study`` (None on the non-zero ranks of a torchrun launch).
        study_dir: the study directory.
        storage: the storage URL (password hidden).
        leaderboard: one :class:`~finetune_kit.tuning.leaderboard.Row` per trial, best first.
        best_trial: the best complete trial (an ``optuna.trial.FrozenTrial``), or None.
        best_config: the config of ``best_trial`` (as written to ``best.toml``), or None.
        final_report: the test report of the retrained best config (``final=True``), or None.
        interrupted: a signal stopped this worker; run again to continue the study.

    Example:
        >>> import tempfile
        >>> import finetune_kit as fk
        >>> config = fk.RunConfig.from_dict({
        ...     "data": {"dataset": "fake", "val_fraction": 0.25, "options": {"train_size": 32,
        ...              "test_size": 8, "in_channels": 1, "image_size": 16}},
        ...     "model": {"name": "lenet", "options": {"input_size": 16}},
        ...     "train": {"epochs": 1, "device": "cpu", "output_dir": tempfile.mkdtemp() + "/study"}})
        >>> result = fk.tune(config, {"optim.lr": [0.01, 0.1]}, n_trials=2, verbose=False)
        >>> sorted(result.best_params), 0.0 <= result.best_value <= 1.0
        (['optim.lr'], True)
        >>> result.best_config.optim.lr == result.best_params["optim.lr"]
        True
    """

    study: Any
    study_dir: Path
    storage: str
    leaderboard: list[Row] = field(default_factory=list)
    best_trial: Any = None
    best_config: RunConfig | None = None
    final_report: Any = None
    interrupted: bool = False

    @property
    def best_value(self) -> float | None:
        """The metric of the best trial, or None."""
        return None if self.best_trial is None else self.best_trial.value

    @property
    def best_params(self) -> dict[str, Any]:
        """The values of the best trial (``{"optim.lr": ...}``), or ``{}``."""
        return {} if self.best_trial is None else dict(self.best_trial.params)


def tune(
    config: RunConfig | str | Path,
    space: SearchSpace | Mapping[str, Any] | None = None,
    *,
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    pruner: Any = "successive_halving",
    metric: str = "val_accuracy",
    output_dir: str | Path | None = None,
    final: bool = False,
    verbose: bool = True,
) -> TuneResult:
    """Search the ``space`` around ``config`` with Optuna: one Trainer run per trial.

    Each trial trains the config with the trial's values in ``STUDY_DIR/trial-NNNN/``, reports
    ``metric`` after every epoch (the pruner may stop it there) and scores the metric of its last
    epoch. The test set is used only by the final run. See :mod:`finetune_kit.tuning`.

    Args:
        config: the config every trial starts from, or the path of a TOML file whose
            ``[tune]`` section is the search space.
        space: the search space (a :class:`SearchSpace` or a ``[tune]``-style mapping);
            None when ``config`` is a file with a ``[tune]`` section.
        n_trials: stop when this many trials are finished (complete, pruned or failed; trials
            of every worker count, interrupted ones do not). None: until ``timeout``.
        timeout: start no new trial after this many seconds.
        storage: a database URL or a ``.log`` journal file; None: ``STUDY_DIR/study.db``
            (the study stays with its directory when that is moved).
        study_name: the study's name in the storage (default: the study directory's name).
        pruner: ``"successive_halving"``, ``"hyperband"``, ``"median"``, ``"none"`` or an
            ``optuna.pruners.BasePruner``.
        metric: the logged metric to optimise; minimised when its name ends in ``loss``.
        output_dir: the study directory (default: ``train.output_dir`` of the config).
        final: retrain the best config in ``STUDY_DIR/final-trial-NNNN`` and test it.
        verbose: print a line per trial, the leaderboard and the best trial.

    Returns:
        A :class:`TuneResult`.

    Raises:
        ConfigError: a bad search space, config, metric, pruner or storage, or the ``tune``
            extra is missing (before any trial runs).
        OutputDirError: the study directory holds something else.

    Example:
        >>> space = {"finetune.strategy": ["full", "lorra"]}
        >>> tune(RunConfig(), space)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.UnknownNameError: [tune] ...: Unknown strategy 'lorra'. Did you mean 'lora'? ...
    """
    optuna = require_optuna()
    base, space = _inputs(config, space)
    if n_trials is None and timeout is None:
        raise ConfigError("Give n_trials (--trials N) or timeout (--timeout S), or the study never ends.")
    if n_trials is not None and n_trials < 0:
        raise ConfigError(f"n_trials must be >= 0, got {n_trials}.")
    check_study(base, space, metric)
    pruner = create_pruner(pruner, _most_epochs(base, space))
    study_dir = Path(output_dir if output_dir is not None else base.train.output_dir)
    name = study_name or study_dir.resolve().name
    url = storage_url(storage, study_dir)
    coordinator = Coordinator.for_config(base.train.device)
    settings = TrialSettings(base, space, metric, study_dir, name, coordinator)
    if not coordinator.is_main:
        return _follow(settings, public_url(url))
    opened = _open_storage(study_dir, name, storage, url, verbose)
    result = TuneResult(study=None, study_dir=study_dir, storage=public_url(url))
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is printed below
    try:
        with _sigterm_as_interrupt():
            result.study = study = open_study(
                opened, name, direction=direction_of(metric), seed=base.train.seed, pruner=pruner
            )
            _recover(study, study_dir, verbose)
            if verbose:
                _print_header(study, settings, result.storage, n_trials)
            result.interrupted = _run_trials(study, settings, n_trials, timeout, verbose)
            outputs = write_outputs(study, settings, verbose=verbose, plots=not result.interrupted)
            result.leaderboard, result.best_trial = outputs["rows"], outputs["best"]
            result.best_config = outputs["best_config"]
            if final and not result.interrupted:
                result.final_report = _final(settings, result.best_config)
            coordinator.share(None)  # the other ranks of a torchrun launch leave
    except KeyboardInterrupt:  # outside a trial (writing outputs, the final run)
        result.interrupted = True
    finally:
        optuna.logging.set_verbosity(previous)
    return result


def _most_epochs(base: RunConfig, space: SearchSpace) -> int:
    """The longest a trial may train (``train.epochs`` may be searched): the pruners' horizon."""
    searched = [int(c) for p in space.params if p.key == "train.epochs" for c in p.candidates()]
    return max([base.train.epochs, *searched])


def _open_storage(study_dir: Path, name: str, storage: str | None, url: str, verbose: bool) -> Any:
    """Check the study directory, open the storage, then claim the directory for the study.

    The directory is written only once the storage opened (except the default storage's own
    folder), so a bad URL or an unreachable server leaves nothing behind.
    """
    check_claim(study_dir, name, storage)
    if storage is None:  # the SQLite file goes into the study directory
        claim(study_dir, name, storage)
    opened = open_storage(url, on_stale=lambda s, t: _requeue_lost(s, t, study_dir, verbose))
    claim(study_dir, name, storage)
    return opened


def _inputs(config: Any, space: Any) -> tuple[RunConfig, SearchSpace]:
    if isinstance(config, (str, Path)):
        if space is not None:
            raise ConfigError(
                f"The search space was given twice: pass the path of a file with a [tune] section "
                f"({config}) without space=, or a RunConfig with space=."
            )
        return load_tune_config(config)
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config must be a RunConfig or a TOML file path, got {type(config).__name__}.")
    if space is None:
        raise ConfigError(
            'Give a search space, e.g. space={"optim.lr": {"low": 1e-4, "high": 0.1, "log": True}}.'
        )
    return config, space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a study as Ctrl-C does (the Trainer handles both while a trial trains)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def counted(study: Any) -> int:
    """Trials that count towards ``n_trials``: finished ones (not interrupted) and running ones."""
    optuna = require_optuna()
    states = optuna.trial.TrialState
    again = retried(study)
    trials = study.get_trials(deepcopy=False)
    return sum(
        t.state in (states.COMPLETE, states.PRUNED, states.RUNNING)
        or (t.state == states.FAIL and t.number not in again)
        for t in trials
    )


def _run_trials(
    study: Any, settings: TrialSettings, n_trials: int | None, timeout: float | None, verbose: bool
) -> bool:
    """Run trials until ``n_trials`` count or ``timeout`` passed; True when interrupted."""
    start = time.monotonic()
    while n_trials is None or counted(study) < n_trials:
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        current: dict[str, Any] = {}

        def objective(trial: Any, current: dict[str, Any] = current) -> float:
            current["trial"] = trial
            return run_trial(trial, settings)

        try:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        except KeyboardInterrupt:
            _interrupted(study, current.get("trial"), settings.study_dir, verbose)
            return True
        if verbose and "trial" in current:
            _print_trial(study, current["trial"].number, settings.metric)
    return False


def _interrupted(study: Any, trial: Any, study_dir: Path, verbose: bool) -> None:
    """This worker was stopped: mark its trial interrupted and queue its values again."""
    if trial is None:
        return
    frozen = study.get_trials(deepcopy=False)[trial.number]
    if frozen.state.name == "RUNNING":
        mark_failed(study, frozen)
        frozen = study.get_trials(deepcopy=False)[trial.number]
    if frozen.state.name == "FAIL":
        _requeue_lost(study, frozen, study_dir, verbose)


def _requeue_lost(study: Any, trial: Any, study_dir: Path, verbose: bool) -> None:
    """Queue an interrupted trial's values again and say so in its run directory."""
    requeue(study, trial)
    record = {
        "study": study.study_name,
        "trial": trial.number,
        "state": "interrupted",
        "params": trial.params,
    }
    write_trial_file(trial_dir(study_dir, trial.number), record | {"requeued": True})
    if verbose:
        print(f"Trial {trial.number} was interrupted; its values are queued to run again.")


def _recover(study: Any, study_dir: Path, verbose: bool) -> None:
    """Mark the running trials of dead workers on this machine failed, and queue them again."""
    for trial in find_dead_trials(study):
        if mark_failed(study, trial):
            _requeue_lost(study, trial, study_dir, verbose)


def _print_header(study: Any, settings: TrialSettings, storage: str, n_trials: int | None) -> None:
    goal = "" if n_trials is None else f" of {n_trials}"
    print(
        f"Study '{study.study_name}' in {storage}: {counted(study)}{goal} trials finished or running; "
        f"{study.direction.name.lower()} {settings.metric}.\nSearch space:\n{settings.space.table()}",
        flush=True,
    )


def _print_trial(study: Any, number: int, metric: str) -> None:
    row = next(r for r in leaderboard(study) if r.trial == number)
    value = "" if row.value is None else f"{metric} {row.value:.4f}"
    values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.params.items())
    note = f" ({row.note})" if row.note else ""
    print(
        f"trial {number:4d}  {row.state:9s} {value}  {row.epochs} epochs  {row.seconds} s  {values}{note}",
        flush=True,
    )


def _final(settings: TrialSettings, config: RunConfig | None) -> Any:
    """Retrain the best config on every rank and test it."""
    if config is None:
        raise ConfigError("--final needs a complete trial, and the study has none yet; run more trials.")
    settings.coordinator.share(("final", config.to_dict()))
    return retrain(config)


def _follow(settings: TrialSettings, storage: str) -> TuneResult:
    """The non-zero ranks of a torchrun launch: train each trial rank 0 sends, until it stops."""
    optuna = settings.coordinator.optuna
    while (message := settings.coordinator.share(None)) is not None:
        if message[0] == "final":
            retrain(RunConfig.from_dict(message[1]))
            continue
        with contextlib.suppress(optuna.TrialPruned, TrialFailed):  # rank 0 records the outcome
            run_trial(message, settings)
    return TuneResult(study=None, study_dir=settings.study_dir, storage=storage)
