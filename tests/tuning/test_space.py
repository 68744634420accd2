"""The [tune] section: entries, conditions, and every way of writing one wrong."""

from __future__ import annotations

import pytest
import tomllib

from finetune_kit.config import RunConfig
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.space import SearchSpace

SPACE = {
    "optim.lr": {"low": 1e-4, "high": 0.3, "log": True},
    "loader.batch_size": [64, 128, 256],
    "train.epochs": {"low": 2, "high": 6},
    "optim.weight_decay": {"low": 0.0, "high": 0.01, "step": 0.001},
    "finetune.strategy": ["full", "freeze_first", "lora"],
    "finetune.options.n": {"choices": [1, 2], "when": {"finetune.strategy": "freeze_first"}},
    "finetune.options.rank": {"choices": [4, 8], "when": {"finetune.strategy": ["lora"]}},
}


def test_entries_and_their_kinds():
    space = SearchSpace.from_dict(SPACE)
    assert space.keys == list(SPACE)
    kinds = [p.kind for p in space.params]
    assert kinds == ["float", "categorical", "int", "float", "categorical", "categorical", "categorical"]
    assert "float log-uniform in [0.0001, 0.3]" in space.table()
    assert "when finetune.strategy is freeze_first" in space.table()


def test_toml_dotted_keys_and_tables_are_the_same_space():
    quoted = tomllib.loads('[tune]\n"optim.lr" = [0.1, 0.2]\n"finetune.options.n" = [1, 2]\n')
    dotted = tomllib.loads("[tune]\noptim.lr = [0.1, 0.2]\n[tune.finetune.options]\nn = [1, 2]\n")
    assert SearchSpace.from_dict(quoted["tune"]) == SearchSpace.from_dict(dotted["tune"])


def test_conditional_entries_follow_the_values_of_earlier_ones():
    optuna = require_optuna()
    space = SearchSpace.from_dict(SPACE)
    fixed = {"optim.lr": 0.01, "loader.batch_size": 64, "train.epochs": 3, "optim.weight_decay": 0.002}
    lora = space.suggest(
        optuna.trial.FixedTrial(fixed | {"finetune.strategy": "lora", "finetune.options.rank": 8})
    )
    assert lora == fixed | {"finetune.strategy": "lora", "finetune.options.rank": 8}  # no "n"
    frozen = space.suggest(
        optuna.trial.FixedTrial(fixed | {"finetune.strategy": "freeze_first", "finetune.options.n": 2})
    )
    assert frozen["finetune.options.n"] == 2 and "finetune.options.rank" not in frozen


def test_apply_sets_keys_and_options_and_checks_them():
    space = SearchSpace.from_dict(SPACE)
    config = space.apply(RunConfig(), {"optim.lr": 0.01, "finetune.options.n": 2, "train.epochs": 3})
    assert (config.optim.lr, config.finetune.options, config.train.epochs) == (0.01, {"n": 2}, 3)
    with pytest.raises(ConfigError, match="loader.batch_size must be int"):
        space.apply(RunConfig(), {"loader.batch_size": 1.5})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"optim.lrr": [0.1]}, "unknown config key 'optim.lrr'. Did you mean 'optim.lr'?"),
        ({"lr": [0.1]}, "unknown config key 'lr'. Did you mean 'optim.lr'?"),
        ({"optimizer.lr": [0.1]}, "unknown config key 'optimizer.lr'"),
        ({"optim.lr": {"low": 0.1, "hihg": 0.2}}, "unknown field 'hihg'. Did you mean 'high'?"),
        ({"optim.lr": {"low": 0.1}}, "a range needs low and high (missing high)"),
        ({"optim.lr": 0.1}, "an entry is a list of choices"),
        ({"optim.lr": {"low": 0.2, "high": 0.1}}, "low must be below high"),
        ({"optim.lr": {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
        ({"optim.lr": {"low": 0.1, "high": 0.5, "log": True, "step": 0.1}}, "cannot be combined with log"),
        ({"optim.lr": {"choices": [0.1], "low": 0.1}}, "either choices or low/high"),
        ({"optim.lr": []}, "choices must be a non-empty list"),
        ({"optim.lr": [0.1, 0.1]}, "repeat a value"),
        ({"finetune.options": [1, 2]}, 'search one option per entry, e.g. "finetune.options.n"'),
        ({"optim.lr.x": [1]}, "'optim.lr' is not a table of options"),
        ({"train.output_dir": ["a", "b"]}, "each trial writes its own run directory"),
        ({"finetune.recipe": ["two_stage"]}, "tune finetune.strategy instead"),
        (
            {"finetune.options.n": {"choices": [1], "when": {"finetune.strategy": "freeze_first"}}},
            "not an earlier choice entry",
        ),
        (
            {
                "finetune.strategy": ["full", "freeze_first"],
                "finetune.options.n": {"choices": [1], "when": {"finetune.strategy": "freeze_frist"}},
            },
            "Did you mean 'freeze_first'?",
        ),
        ({}, "one entry per config key"),
    ],
)
def test_bad_entries_are_refused_with_what_to_write(raw, message):
    with pytest.raises(ConfigError) as error:
        SearchSpace.from_dict(raw)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
