"""The leaderboard of a study: one row per trial, best first, as ``trials.csv`` and a printed table.

A trial's state is ``complete``, ``pruned`` (the pruner stopped it; its value is the last one
reported), ``failed`` (its loss diverged, or its config was refused), ``interrupted`` (its worker
stopped; a later trial reran its values), ``running`` or ``queued``.

Example:
    >>> row = Row(trial=3, state="complete", value=0.91, epochs=5, seconds=12.0,
    ...           params={"optim.lr": 0.01}, note="")
    >>> print(table([row], "val_accuracy", ["optim.lr"]))
    rank  trial  state     val_accuracy  epochs  seconds  optim.lr
       1      3  complete        0.9100       5     12.0  0.01
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_kit.storage import atomic_write_text
from finetune_kit.tuning.extra import require_optuna
from finetune_kit.tuning.recovery import RETRY_ATTR

__all__ = ["Row", "leaderboard", "table", "write_csv"]

SHOWN = 20  # rows of the printed table; trials.csv holds them all


@dataclass(frozen=True)
class Row:
    """One trial on the leaderboard.

    Attributes:
        trial: the trial number (its run directory is ``trial-NNNN``).
        state: see the module docstring.
        value: the metric (last epoch; for a pruned trial the last reported), or None.
        epochs: epochs trained.
        seconds: wall time of the trial.
        params: the trial's values.
        note: a rerun, the trial that reran it, or the error of a failed trial.
    """

    trial: int
    state: str
    value: float | None
    epochs: int | None
    seconds: float | None
    params: dict[str, Any]
    note: str


def _state(trial: Any, reruns: dict[int, int]) -> tuple[str, str]:
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "queued"}
    note = f"rerun of trial {trial.user_attrs[RETRY_ATTR]}" if RETRY_ATTR in trial.user_attrs else ""
    if trial.state.name == "FAIL":
        if trial.number in reruns:
            return "interrupted", f"rerun as trial {reruns[trial.number]}"
        return "failed", trial.user_attrs.get("error", "failed")
    return names.get(trial.state.name, trial.state.name.lower()), note


def _value(trial: Any) -> float | None:
    if trial.state.name == "COMPLETE":
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def leaderboard(study: Any) -> list[Row]:
    """The rows of ``study``: complete trials best first, then pruned ones, then the rest."""
    require_optuna()
    trials = study.get_trials(deepcopy=False)
    reruns = {t.user_attrs[RETRY_ATTR]: t.number for t in trials if RETRY_ATTR in t.user_attrs}
    rows = []
    for t in trials:
        state, note = _state(t, reruns)
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
        epochs = t.user_attrs.get("epochs", max(t.intermediate_values, default=None))
        rows.append(Row(t.number, state, _value(t), epochs, seconds, dict(t.params), note))
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    order = {"complete": 0, "pruned": 1}

    def key(row: Row) -> tuple:
        rank = order.get(row.state, 2)
        value = sign * row.value if rank < 2 and row.value is not None else float("inf")
        return (rank, value, row.trial)

    return sorted(rows, key=key)


def _columns(metric: str, keys: list[str]) -> list[str]:
    return ["rank", "trial", "state", metric, "epochs", "seconds", *keys, "note"]


def _cells(rows: list[Row], keys: list[str]) -> list[list[str]]:
    out = []
    rank = 0
    for row in rows:
        rank += row.state == "complete"
        out.append(
            [
                str(rank) if row.state == "complete" else "",
                str(row.trial),
                row.state,
                "" if row.value is None else f"{row.value:.4f}",
                "" if row.epochs is None else str(row.epochs),
                "" if row.seconds is None else f"{row.seconds:.1f}",
                *(_format(row.params.get(k)) for k in keys),
                row.note,
            ]
        )
    return out


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_csv(rows: list[Row], path: Path, metric: str, keys: list[str]) -> None:
    """Write the leaderboard to ``path`` (atomically): one row per trial, values unrounded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_columns(metric, keys))
    rank = 0
    for row in rows:
        rank += row.state == "complete"
        params = ["" if row.params.get(k) is None else row.params[k] for k in keys]
        writer.writerow(
            [rank if row.state == "complete" else "", row.trial, row.state]
            + ["" if x is None else x for x in (row.value, row.epochs, row.seconds)]
            + params
            + [row.note]
        )
    atomic_write_text(path, buffer.getvalue())


def table(rows: list[Row], metric: str, keys: list[str]) -> str:
    """The leaderboard as aligned text (the first :data:`SHOWN` rows)."""
    header = _columns(metric, keys)
    cells = _cells(rows[:SHOWN], keys)
    if not any(line[-1] for line in cells):  # no notes: leave the column out
        header, cells = header[:-1], [line[:-1] for line in cells]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(header)]
    right = {0, 1, 3, 4, 5}  # rank, trial, value, epochs, seconds
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, *cells]
    ]
    if len(rows) > SHOWN:
        lines.append(f"... and {len(rows) - SHOWN} more trials in trials.csv")
    return "\n".join(lines)
