"""Interrupted trials: find them, mark them, queue their values to run again.

A trial is *interrupted* when its worker stopped before the trial ended: Ctrl-C or SIGTERM
(the worker marks it failed itself), SIGKILL or a crash (the trial stays "running" in the
storage). Each trial records which process runs it (:func:`worker_id`); when a study continues,
a running trial whose process on this machine is gone is marked failed at once, and a database
heartbeat catches those of other machines. Every interrupted trial is queued again with the
same values (:func:`requeue`): the next worker runs it as a new trial, whose ``retry_of``
attribute names the one it replaces, so no finished trial is ever run twice.

Example:
    >>> worker = worker_id()
    >>> is_dead(worker)
    False
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from finetune_kit.tuning.extra import require_optuna

__all__ = ["find_dead_trials", "is_dead", "mark_failed", "requeue", "retried", "worker_id"]

RETRY_ATTR = "retry_of"
WORKER_ATTR = "worker"


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), telling apart reused pids."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), after the command name


def worker_id() -> dict[str, Any]:
    """This process: host name, pid and start time (what :func:`is_dead` checks)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)}


def is_dead(worker: Any) -> bool:
    """Whether the worker process is gone; False when unknown (another machine, no record).

    Example:
        >>> is_dead({"host": "elsewhere.example.org", "pid": 1, "start": None})
        False
    """
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, run by another user
        return False
    started = _start_time(pid)
    return worker.get("start") is not None and started is not None and started != worker["start"]


def find_dead_trials(study: Any) -> list[Any]:
    """The running trials of ``study`` whose worker on this machine is gone."""
    optuna = require_optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [t for t in running if is_dead(t.user_attrs.get(WORKER_ATTR))]


def mark_failed(study: Any, trial: Any) -> bool:
    """Mark a running trial failed; False when another worker did so first (or it finished)."""
    optuna = require_optuna()
    if study.get_trials(deepcopy=False)[trial.number].state != optuna.trial.TrialState.RUNNING:
        return False
    try:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError):  # another worker was first
        return False
    return True


def retried(study: Any) -> set[int]:
    """Numbers of the trials that were queued again."""
    return {t.user_attrs[RETRY_ATTR] for t in study.get_trials(deepcopy=False) if RETRY_ATTR in t.user_attrs}


def requeue(study: Any, trial: Any) -> None:
    """Queue ``trial``'s values as a new trial (once: a trial already queued again is skipped)."""
    if trial.number in retried(study):
        return
    study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number}, skip_if_exists=False)
