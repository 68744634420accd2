"""Registry: register, get, list, duplicates and unknown names."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.registry import Registry, did_you_mean


@pytest.fixture
def reg() -> Registry:
    r: Registry = Registry("widget")
    r.register("alpha", 1)
    r.register("alpine", 2)
    r.register("beta", 3)
    return r


def test_register_and_get(reg):
    assert reg.get("alpha") == 1
    assert reg.get("beta") == 3
    assert len(reg) == 3 and "alpine" in reg and "gamma" not in reg


def test_register_as_decorator_returns_the_object():
    r: Registry = Registry("thing")

    @r.register("made")
    def make():
        return 42

    assert r.get("made") is make and make() == 42


def test_list_with_glob(reg):
    assert reg.list() == ["alpha", "alpine", "beta"]
    assert reg.list("alp*") == ["alpha", "alpine"]
    assert reg.list("*ta") == ["beta"]
    assert reg.list("zzz*") == []


def test_duplicate_registration_raises_and_override_replaces(reg):
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("alpha", 10)
    assert reg.get("alpha") == 1
    reg.register("alpha", 10, override=True)
    assert reg.get("alpha") == 10


@pytest.mark.parametrize("bad", ["Alpha", "1abc", "with-dash", "", "sp ace"])
def test_names_must_be_snake_case(bad):
    with pytest.raises(ConfigError, match="snake_case"):
        Registry("x").register(bad, 1)


def test_unknown_name_lists_choices_and_suggests(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    message = str(info.value)
    assert "Unknown widget 'alpah'" in message
    assert "Did you mean 'alpha'?" in message
    assert "alpha, alpine, beta" in message


def test_unknown_name_far_from_any_choice_has_no_suggestion(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("qqqqqq")
    assert "Did you mean" not in str(info.value)


def test_unregister(reg):
    reg.unregister("beta")
    assert "beta" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("beta")


def test_did_you_mean():
    assert did_you_mean("resnt18", ["resnet18", "convnet"]) == " Did you mean 'resnet18'?"
    assert did_you_mean("xyz", ["resnet18"]) == ""


# ------------------------------------------------------------------ one option checker
@pytest.mark.parametrize(
    "call, expected",
    [
        (
            lambda fk: fk.create_loss("focal", gama=2.0),
            "The loss 'focal' has no option 'gama'. Did you mean 'gamma'?",
        ),
        (
            lambda fk: fk.create_model("convnet", num_classes=2, widht=8),
            "The model 'convnet' has no option 'widht'.",
        ),
        (
            lambda fk: fk.create_metric("top_k_accuracy", num_classes=5, kk=2),
            "The metric 'top_k_accuracy' has no option 'kk'. Did you mean 'k'?",
        ),
        (
            lambda fk: fk.create_strategy("freeze_first", nn=2),
            "The strategy 'freeze_first' has no option 'nn'.",
        ),
        (
            lambda fk: fk.create_datasets("fake", trian_size=8),
            "The dataset 'fake' has no option 'trian_size'.",
        ),
        (
            lambda fk: fk.create_optimizer(torch.nn.Linear(2, 2), "adam", lr=0.1, amsgrd=True),
            "The optimizer 'adam' has no option 'amsgrd'. Did you mean 'amsgrad'?",
        ),
        (
            lambda fk: fk.create_scheduler(
                torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1),
                "step",
                epochs=2,
                steps_per_epoch=2,
                stepsize=1,
            ),
            "The scheduler 'step' has no option 'stepsize'. Did you mean 'step_size'?",
        ),
    ],
)
def test_every_registry_checks_options_the_same_way(call, expected):
    import finetune_kit as fk

    with pytest.raises(ConfigError) as info:
        call(fk)
    message = str(info.value)
    assert message.startswith(expected) and "Its options are:" in message


def test_plural_kinds_in_messages():
    import finetune_kit as fk

    with pytest.raises(UnknownNameError, match="Available losses: "):
        fk.create_loss("nope")
    with pytest.raises(UnknownNameError, match="Available strategies: "):
        fk.create_strategy("nope")
