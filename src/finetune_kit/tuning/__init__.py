"""Tuning: search learning rates, strategies and any other config key with Optuna.

A study trains one ordinary Trainer run per trial (``STUDY_DIR/trial-NNNN/``), reports the
validation metric after every epoch so that a pruner can stop hopeless trials, and keeps every
trial in a storage (an SQLite file by default; PostgreSQL or a journal file to share a study
between machines). Killing a study and running the same command again continues it; several
workers on the same storage share its trials. Optuna is the optional ``tune`` extra
(``pip install "finetune-kit[tune]"``).

Modules: :mod:`~finetune_kit.tuning.space` (the ``[tune]`` section),
:mod:`~finetune_kit.tuning.validate` (checks before the first trial),
:mod:`~finetune_kit.tuning.trial` (one trial), :mod:`~finetune_kit.tuning.pruning`,
:mod:`~finetune_kit.tuning.storage`, :mod:`~finetune_kit.tuning.recovery` (interrupted trials),
:mod:`~finetune_kit.tuning.leaderboard`, :mod:`~finetune_kit.tuning.best`,
:mod:`~finetune_kit.tuning.plots`, :mod:`~finetune_kit.tuning.study_dir`,
:mod:`~finetune_kit.tuning.distributed` (DDP trials) and :mod:`~finetune_kit.tuning.runner`.

Example:
    >>> space = SearchSpace.from_dict({"optim.lr": {"low": 1e-4, "high": 0.1, "log": True}})
    >>> print(space.table())
      optim.lr  float log-uniform in [0.0001, 0.1]
"""

from __future__ import annotations

from finetune_kit.tuning.config_file import load_tune_config
from finetune_kit.tuning.extra import require_optuna
from finetune_kit.tuning.leaderboard import Row
from finetune_kit.tuning.pruning import PruningCallback
from finetune_kit.tuning.runner import TuneResult, tune
from finetune_kit.tuning.space import Param, SearchSpace

__all__ = [
    "Param",
    "PruningCallback",
    "Row",
    "SearchSpace",
    "TuneResult",
    "load_tune_config",
    "require_optuna",
    "tune",
]
