"""Before the first trial: every value, name, option and the metric are checked."""

from __future__ import annotations

import pytest

from finetune_kit.config import RunConfig
from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.tuning.space import SearchSpace
from finetune_kit.tuning.validate import check_study, direction_of


def check(space: dict, base: RunConfig | None = None, metric: str = "val_accuracy") -> None:
    check_study(base or RunConfig(), SearchSpace.from_dict(space), metric)


def test_a_good_study_passes():
    check(
        {
            "optim.lr": {"low": 1e-4, "high": 0.1, "log": True},
            "optim.optimizer": ["sgd", "adamw"],
            "optim.scheduler": ["constant", "cosine"],
            "finetune.strategy": ["full", "freeze_first", "lora"],
            "finetune.options.n": {"choices": [1, 2], "when": {"finetune.strategy": "freeze_first"}},
            "finetune.options.rank": {"choices": [4, 8], "when": {"finetune.strategy": "lora"}},
            "model.name": ["convnet", "lenet"],
        }
    )


@pytest.mark.parametrize(
    ("space", "error", "message"),
    [
        ({"finetune.strategy": ["full", "lorra"]}, UnknownNameError, "Did you mean 'lora'?"),
        ({"optim.optimizer": ["sgd", "adamww"]}, UnknownNameError, "Did you mean 'adamw'?"),
        ({"model.name": ["convnett"]}, UnknownNameError, "Did you mean 'convnet'?"),
        ({"optim.scheduler": ["cosin"]}, UnknownNameError, "Did you mean 'cosine'?"),
        ({"optim.lr": {"low": 0.0, "high": 0.1}}, ConfigError, "optim.lr must be > 0.0"),
        ({"loader.batch_size": [0, 32]}, ConfigError, "loader.batch_size must be >= 1"),
        ({"loader.batch_size": [32.5]}, ConfigError, "loader.batch_size must be int"),
        ({"finetune.options.rnak": [4]}, ConfigError, "whose finetune.strategy is unset"),
        ({"finetune.strategy": ["lora"], "finetune.options.rnak": [4]}, ConfigError, "has no option 'rnak'"),
        (
            {"finetune.strategy": ["freeze_first"], "finetune.options.n": [-1, 1]},
            ConfigError,
            "freeze_first option n",
        ),
    ],
)
def test_bad_values_names_and_options_are_refused(space, error, message):
    with pytest.raises(error) as caught:
        check(space)
    assert message in str(caught.value)


def test_options_fixed_in_the_config_must_suit_every_searched_strategy():
    base = RunConfig.from_dict({"finetune": {"strategy": "freeze_first", "options": {"n": 2}}})
    with pytest.raises(ConfigError) as caught:
        check({"finetune.strategy": ["full", "freeze_first"]}, base)
    text = str(caught.value)
    assert "'full' has no option 'n'" in text
    assert 'when = {"finetune.strategy"' in text  # says how to make it conditional


def test_the_base_config_names_are_checked_too():
    base = RunConfig.from_dict({"optim": {"optimizer": "adamm"}})
    with pytest.raises(UnknownNameError, match="config optim.optimizer: Unknown optimizer 'adamm'"):
        check({"optim.lr": [0.1]}, base)


def test_recipes_cannot_be_tuned():
    base = RunConfig.from_dict({"finetune": {"recipe": "two_stage"}})
    with pytest.raises(ConfigError, match="recipes cannot be tuned"):
        check({"optim.lr": [0.1]}, base)


def test_the_metric_must_be_logged():
    with pytest.raises(ConfigError, match="Did you mean 'val_accuracy'"):
        check({"optim.lr": [0.1]}, metric="val_acuracy")
    with pytest.raises(ConfigError, match="add more with train.metrics"):
        check({"optim.lr": [0.1]}, metric="val_f1")
    check({"optim.lr": [0.1]}, RunConfig.from_dict({"train": {"metrics": ["f1"]}}), metric="val_f1")


def test_direction_follows_the_metric():
    assert direction_of("val_loss") == "minimize"
    assert direction_of("val_accuracy") == direction_of("val_f1") == "maximize"
