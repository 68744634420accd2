"""Seeded sampling that stays reproducible with one worker and never repeats across workers.

A sampler seeded once per process would make two workers of the same study propose the same
values in the same order. :func:`seeded_sampler` instead seeds Optuna's TPE sampler from the
study seed *and the trial number*: a study run by one process gives the same values every time,
and trials of several workers (which never share a number) draw different values.

Example:
    >>> sampler = seeded_sampler(0)
    >>> type(sampler).__name__
    'PerTrialSeedSampler'
"""

from __future__ import annotations

import hashlib
from typing import Any

from finetune_kit.tuning.extra import require_optuna

__all__ = ["seeded_sampler", "trial_seed"]


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a study seeded with ``seed`` (a 32-bit int).

    Example:
        >>> trial_seed(0, 3) == trial_seed(0, 3) != trial_seed(0, 4)
        True
    """
    digest = hashlib.sha256(f"finetune_kit.tune:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seeded_sampler(seed: int) -> Any:
    """A TPE sampler whose random numbers depend only on ``seed`` and the trial number.

    Args:
        seed: the study seed (``train.seed`` of the config).

    Returns:
        An ``optuna.samplers.BaseSampler``.
    """
    optuna = require_optuna()

    class PerTrialSeedSampler(optuna.samplers.BaseSampler):
        """Delegates to a ``TPESampler`` made afresh for each trial, seeded by its number."""

        def __init__(self) -> None:
            self._number: int | None = None
            self._sampler = optuna.samplers.TPESampler(seed=seed)

        def _for(self, trial: Any) -> Any:
            if trial.number != self._number:
                self._number = trial.number
                self._sampler = optuna.samplers.TPESampler(seed=trial_seed(seed, trial.number))
            return self._sampler

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, name, distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._sampler.reseed_rng()

    return PerTrialSeedSampler()
