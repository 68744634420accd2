"""Where a study lives, and opening it: storages, pruners, the study itself.

``storage`` is one of:

* ``None``: ``STUDY_DIR/study.db``, an SQLite file (several processes on one machine can share it);
* a database URL that SQLAlchemy understands, e.g. ``sqlite:///path/study.db`` or
  ``postgresql://user:password@host:5432/dbname`` (many machines: every worker gives the
  same URL and study name);
* the path of a journal file ending in ``.log`` (Optuna's ``JournalStorage``; for a file system
  that several machines mount, such as NFS, where SQLite's locking is not safe).

Database storages record a heartbeat of each running trial, so a trial whose worker died on
another machine is marked failed and queued again after :data:`GRACE_PERIOD` seconds.

Example:
    >>> from pathlib import Path
    >>> storage_url(None, Path("/runs/study")).endswith("/runs/study/study.db")
    True
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean
from finetune_kit.tuning.extra import INSTALL_HINT, require_optuna
from finetune_kit.tuning.sampler import seeded_sampler

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "PRUNERS",
    "create_pruner",
    "open_storage",
    "open_study",
    "public_url",
    "storage_url",
]

HEARTBEAT_INTERVAL = 10  # seconds between the heartbeats of a running trial
GRACE_PERIOD = 60  # seconds without a heartbeat after which a running trial counts as dead
JOURNAL_SUFFIXES = (".log", ".journal")
SCHEMA_ATTEMPTS = 4  # opening a database whose tables another worker is creating
_RACES = ("already exists", "database is locked", "UNIQUE constraint failed", "duplicate key")
PRUNERS = ("successive_halving", "hyperband", "median", "none")


def storage_url(storage: str | Path | None, study_dir: Path) -> str:
    """The storage to use, as a URL or journal-file path (None: ``study_dir/study.db``)."""
    if storage is None:
        return f"sqlite:///{(study_dir / 'study.db').resolve()}"
    return str(storage)


def public_url(url: str) -> str:
    """``url`` with any password hidden, for messages and files.

    Example:
        >>> public_url("postgresql://me:secret@db:5432/studies")
        'postgresql://me:***@db:5432/studies'
    """
    if "://" not in url:
        return url
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url.split("://", 1)[0] + "://..."


def open_storage(url: str, on_stale: Callable[[Any, Any], None]) -> Any:
    """Open the storage ``url`` (see the module docstring).

    Args:
        url: a database URL or a journal file path.
        on_stale: called as ``on_stale(study, frozen_trial)`` for a running trial whose
            heartbeat stopped (database storages only), after it was marked failed.

    Returns:
        An ``optuna.storages.BaseStorage``.

    Raises:
        ConfigError: the URL is malformed, its driver is missing, or the database cannot be
            reached.
    """
    optuna = require_optuna()
    if "://" not in url:
        if not url.endswith(JOURNAL_SUFFIXES):
            raise ConfigError(
                f"Storage {url!r} is neither a database URL nor a journal file: give e.g. "
                "sqlite:///study.db, postgresql://user:password@host/db, or a path ending in .log."
            )
        path = Path(url)
        if not path.parent.is_dir():
            raise ConfigError(f"Journal storage {url}: folder {path.parent} does not exist; create it first.")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    return _rdb_storage(optuna, url, on_stale)


def _rdb_storage(optuna: Any, url: str, on_stale: Callable[[Any, Any], None]) -> Any:
    import sqlalchemy

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # wait for another worker's write
    # Optuna 4.9 renamed the stale-trial callback; give it under the name this version takes.
    takes = inspect.signature(optuna.storages.RDBStorage).parameters
    callback = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in takes
        else "failed_trial_callback"
    )
    options = dict(
        engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD
    )
    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, **options, **{callback: on_stale})
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
                # Workers that start together create the tables together: one wins, the
                # others find them made (or the file locked) and open the storage again.
                if attempt + 1 == SCHEMA_ATTEMPTS or not any(w in str(exc) for w in _RACES):
                    raise
                time.sleep(1.0 + attempt)
    except ImportError as exc:
        fix = f"install it (for PostgreSQL, {INSTALL_HINT} brings psycopg)"
        if url.startswith(("postgresql://", "postgres://")):
            fix = "for psycopg (what the tune extra installs) write the URL as postgresql+psycopg://..."
        raise ConfigError(
            f"Cannot open storage {public_url(url)}: its database driver is missing "
            f"({exc.__cause__ or exc}); {fix}."
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"Cannot open storage {public_url(url)}: {first}. Check the URL, that the database "
            "server runs and that the user may connect."
        ) from None


def create_pruner(pruner: Any, epochs: int) -> Any:
    """An Optuna pruner from its name (see :data:`PRUNERS`), or the pruner object itself.

    Raises:
        ConfigError: an unknown pruner name (with a suggestion).

    Example:
        >>> type(create_pruner("median", epochs=10)).__name__
        'MedianPruner'
    """
    optuna = require_optuna()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(
        f"Unknown pruner {pruner!r}.{did_you_mean(str(pruner), PRUNERS)} Pruners: {', '.join(PRUNERS)}."
    )


def open_study(storage: Any, name: str, *, direction: str, seed: int, pruner: Any) -> Any:
    """Create the study ``name`` in ``storage``, or load it when it exists (workers, resume).

    Raises:
        ConfigError: the stored study optimises in the other direction.
    """
    optuna = require_optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=seeded_sampler(seed),
        pruner=pruner,
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(
            f"Study {name!r} already exists and is set to {stored} its value, but this run would "
            f"{direction} it; use the same metric as before, or another --study-name."
        )
    return study
