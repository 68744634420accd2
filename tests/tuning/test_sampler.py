"""Sampling: the same values for the same study seed and trial number, different across trials."""

from __future__ import annotations

from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.sampler import seeded_sampler, trial_seed


def draws(seed: int, n: int) -> list[float]:
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=seeded_sampler(seed))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n)
    return [t.params["x"] for t in study.trials]


def test_the_same_seed_gives_the_same_values():
    assert draws(0, 4) == draws(0, 4)
    assert draws(0, 4) != draws(1, 4)


def test_each_trial_number_has_its_own_seed():
    seeds = {trial_seed(0, number) for number in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**32 for s in seeds)
    assert len(set(draws(0, 5))) == 5
