"""The study directory: who owns it, and what a study leaves in it.

::

    STUDY_DIR/
      study.json          the study's name and storage (a directory holds one study)
      study.db            the SQLite storage, unless --storage names another
      trial-0000/ ...     one ordinary run directory per trial, with trial.json
      trials.csv          the leaderboard
      best.toml           the best trial's config, for finetune-kit train --config
      plots/              optimisation history, parameter importances, parallel coordinates
      final-trial-NNNN/   the best config retrained and tested (--final)

The leaderboard, ``best.toml`` and the plots are written again at the end of every run of the
study (by every worker that shares the directory); nothing else is ever replaced.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "study"
    >>> claim(folder, "demo", "sqlite:///study.db")
    >>> claim(folder, "other", "sqlite:///study.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    finetune_kit.errors.OutputDirError: ... holds the study 'demo' ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune_kit.errors import OutputDirError
from finetune_kit.storage.atomic import atomic_create_text, is_temp_of
from finetune_kit.tuning.best import best_config, write_best_toml
from finetune_kit.tuning.leaderboard import leaderboard, table, write_csv
from finetune_kit.tuning.plots import write_plots
from finetune_kit.tuning.storage import public_url
from finetune_kit.tuning.trial import TrialSettings

__all__ = ["OWNER_FILE", "check_claim", "claim", "write_outputs"]

OWNER_FILE = "study.json"
DEFAULT_STORAGE = "study.db"  # the SQLite file in the study directory
_OURS = {OWNER_FILE, "study.db", "study.db-journal", "study.db-wal", "study.db-shm"}


def check_claim(study_dir: Path, name: str, storage: str | None) -> None:
    """Whether study ``name`` in ``storage`` may use ``study_dir`` (reads only; see :func:`claim`).

    Raises:
        OutputDirError: the directory holds another study, or files that are not a study's.
    """
    record = study_dir / OWNER_FILE
    if record.is_file():
        held = json.loads(record.read_text(encoding="utf-8"))
        wanted = _owner(name, storage)
        if held != wanted:
            raise OutputDirError(
                f"{study_dir} holds the study {held.get('study_name')!r} in {held.get('storage')}, "
                f"not {name!r} in {wanted['storage']}; continue it with the same --study-name and "
                "--storage, or choose another --output-dir. Nothing was changed."
            )
        return
    if study_dir.exists() and not study_dir.is_dir():
        raise OutputDirError(f"Study directory {study_dir} is a file; choose another --output-dir.")
    if study_dir.is_dir():
        # Another worker may be creating study.json right now: its temp file is a study's too.
        foreign = sorted(
            p.name for p in study_dir.iterdir() if p.name not in _OURS and not is_temp_of(p.name, OWNER_FILE)
        )
        if foreign:
            raise OutputDirError(
                f"{study_dir} is not empty and holds no study ({', '.join(foreign[:3])}...): choose "
                "another --output-dir. Nothing was changed."
            )


def claim(study_dir: Path, name: str, storage: str | None) -> None:
    """Make ``study_dir`` the directory of study ``name`` in ``storage``, or check that it is.

    ``storage`` None is the directory's own ``study.db`` (recorded as such, so the directory
    can be moved).

    Raises:
        OutputDirError: the directory holds another study, or files that are not a study's,
            or cannot be written.
    """
    check_claim(study_dir, name, storage)
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        created = atomic_create_text(
            study_dir / OWNER_FILE, json.dumps(_owner(name, storage), indent=2) + "\n"
        )
    except OSError as exc:
        raise OutputDirError(f"Cannot write to {study_dir}: {exc.strerror or exc}.") from None
    if not created:  # another worker claimed it between the check and now: the same study?
        check_claim(study_dir, name, storage)


def _owner(name: str, storage: str | None) -> dict[str, str]:
    return {"study_name": name, "storage": DEFAULT_STORAGE if storage is None else public_url(storage)}


def write_outputs(
    study: Any, settings: TrialSettings, *, verbose: bool = True, plots: bool = True
) -> dict[str, Any]:
    """Write ``trials.csv``, ``best.toml`` and the plots; print the leaderboard (``verbose``).

    An interrupted worker leaves the plots out (``plots=False``), so that it stops at once.

    Returns:
        ``{"rows": leaderboard rows, "best": best FrozenTrial or None, "best_config": RunConfig
        or None, "plots": files written}``.
    """
    rows = leaderboard(study)
    keys = settings.space.keys
    write_csv(rows, settings.study_dir / "trials.csv", settings.metric, keys)
    say = print if verbose else _silent
    say(f"\n{table(rows, settings.metric, keys)}")
    complete = [r for r in rows if r.state == "complete"]
    best, config = None, None
    if complete:
        best = study.trials[complete[0].trial]
        config = best_config(settings.base, settings.space, best, settings.study_dir)
        path = settings.study_dir / "best.toml"
        write_best_toml(config, path, study=settings.study_name, trial=best, metric=settings.metric)
        say(f"\nBest: trial {best.number}, {settings.metric} = {best.value:.4f}; config: {path}")
    else:
        say("\nNo trial has completed yet, so there is no best.toml.")
    written, skipped = write_plots(study, settings.study_dir / "plots") if plots else ([], [])
    if written:
        say(f"Plots: {', '.join(str(p) for p in written)}")
    for reason in skipped:
        say(f"Plot left out: {reason}")
    return {"rows": rows, "best": best, "best_config": config, "plots": written}


def _silent(*args: Any) -> None:
    """Prints nothing (``verbose=False``)."""
