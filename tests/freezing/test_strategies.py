"""Freezing strategies: registry, options, and what each one makes trainable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.freezing import apply_strategy
from finetune_kit.freezing.registry import (
    STRATEGIES,
    Strategy,
    create_strategy,
    list_strategies,
    register_strategy,
)
from finetune_kit.freezing.strategies import GradualUnfreeze
from finetune_kit.models.stages import model_stages
from finetune_kit.optim import param_groups

BUILT_IN = [
    "bitfit",
    "discriminative_lr",
    "freeze_first",
    "freeze_until",
    "full",
    "gradual_unfreeze",
    "linear_probe",
    "lora",
    "train_only",
]
NEEDED = {"freeze_first": {"n": 1}, "freeze_until": {"module": "block1"}, "train_only": {"names": ["block2"]}}


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.block1 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6))
        self.block2 = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.block2(torch.relu(self.block1(torch.relu(self.stem(x))))))
        return self.fc(x.mean(dim=(2, 3)))


def _trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _stage_params(model: nn.Module, *stages: str) -> set[str]:
    return {n for s in model_stages(model) if s.name in stages for n in s.params}


def test_every_built_in_strategy_is_registered():
    assert set(BUILT_IN) <= set(list_strategies())
    assert list_strategies("freeze_*") == ["freeze_first", "freeze_until"]


@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_gives_a_consistent_plan(name):
    model = TinyNet()
    plan = apply_strategy(model, name, **NEEDED.get(name, {}))
    trainable = _trainable(model)
    assert trainable and set(plan.trainable_names()) == trainable
    assert set(plan.lr_multipliers()) == trainable
    groups = param_groups(model, weight_decay=0.01, lr_multipliers=plan.lr_multipliers())
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert plan.summary().trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert plan.strategy.describe().startswith(name + "(")


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'linear_probe'.*freeze_first"):
        apply_strategy(TinyNet(), "linear_prob")


def test_bad_options_name_the_option_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no option 'every'.*Its options are: decay"):
        apply_strategy(TinyNet(), "discriminative_lr", every=2)
    with pytest.raises(ConfigError, match=r"needs the option.*n"):
        apply_strategy(TinyNet(), "freeze_first")
    with pytest.raises(ConfigError, match=r"decay must be a number in \(0, 1\]"):
        apply_strategy(TinyNet(), "discriminative_lr", decay=1.5)
    with pytest.raises(ConfigError, match="every must be an integer >= 1"):
        apply_strategy(TinyNet(), "gradual_unfreeze", every=0)
    with pytest.raises(ConfigError, match="n must be an integer"):
        apply_strategy(TinyNet(), "freeze_first", n=True)


def test_linear_probe_trains_only_the_head():
    model = TinyNet()
    apply_strategy(model, "linear_probe")
    assert _trainable(model) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_freeze_first_freezes_exactly_n_stages(n):
    model = TinyNet()
    apply_strategy(model, "freeze_first", n=n)
    names = ["stem", "block1", "block2", "head"]
    assert _trainable(model) == _stage_params(model, *names[n:])


def test_freeze_first_out_of_range_names_range_and_stages():
    with pytest.raises(ConfigError, match=r"4 stages \(stem, block1, block2, head\).*0\.\.3"):
        apply_strategy(TinyNet(), "freeze_first", n=4)


def test_freeze_until_a_stage_or_a_module():
    model = TinyNet()
    apply_strategy(model, "freeze_until", module="block1")
    assert _trainable(model) == _stage_params(model, "block1", "block2", "head")
    apply_strategy(model, "freeze_until", module="block1.1")
    assert _trainable(model) == {"block1.1.weight", "block1.1.bias"} | _stage_params(model, "block2", "head")


def test_freeze_until_unknown_name_suggests_stages():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'block1'.*Stages: stem, block1"):
        apply_strategy(TinyNet(), "freeze_until", module="blok1")


def test_freeze_until_a_module_without_parameters_says_so():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    model.add_module("act", nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="has no parameters"):
        apply_strategy(model, "freeze_until", module="act.0")


def test_gradual_unfreeze_schedule_and_multipliers():
    stages = [None] * 5
    assert [GradualUnfreeze(every=1).level_at(e, stages) for e in range(6)] == [0, 1, 2, 3, 4, 4]
    assert [GradualUnfreeze(every=2, start=1).level_at(e, stages) for e in range(6)] == [0, 1, 1, 2, 2, 3]
    model = TinyNet()
    plan = apply_strategy(model, "gradual_unfreeze", every=1, decay=0.5)
    assert plan.on_epoch_start(model, 0) == []
    assert plan.on_epoch_start(model, 2) == [
        "block1.0.weight",
        "block1.0.bias",
        "block1.1.weight",
        "block1.1.bias",
        "block2.0.weight",
        "block2.0.bias",
        "block2.1.weight",
        "block2.1.bias",
    ]
    assert plan.on_epoch_start(model, 2) == []  # idempotent
    mults = plan.lr_multipliers()
    assert mults["fc.weight"] == 1.0 and mults["block2.0.weight"] == 0.5
    assert mults["block1.0.weight"] == 0.25 and "stem.0.weight" not in mults


def test_discriminative_lr_multipliers_per_stage():
    model = TinyNet()
    plan = apply_strategy(model, "discriminative_lr", decay=0.5)
    mults = plan.lr_multipliers()
    assert (mults["stem.0.weight"], mults["block1.0.bias"], mults["block2.1.weight"], mults["fc.bias"]) == (
        0.125,
        0.25,
        0.5,
        1.0,
    )
    assert [r.lr_text for r in plan.summary().rows] == ["0.125", "0.25", "0.5", "1"]


def test_train_only_by_stage_and_pattern():
    model = TinyNet()
    apply_strategy(model, "train_only", names=["head", "block1.*"])
    assert _trainable(model) == {"fc.weight", "fc.bias"} | _stage_params(model, "block1")
    with pytest.raises(UnknownNameError, match="no stage or module matches"):
        apply_strategy(model, "train_only", names="nothing")


def test_custom_strategy_by_registration_and_by_instance():
    @register_strategy("top_two")
    class TopTwo(Strategy):
        def trainable(self, model, stages, level):
            return {n for s in stages[-2:] for n in s.params}

        def multipliers(self, stages):
            return {stages[-2].name: 0.1}

    try:
        model = TinyNet()
        plan = apply_strategy(model, "top_two")
        assert plan.strategy.name == "top_two"
        assert _trainable(model) == _stage_params(model, "block2", "head")
        assert plan.lr_multipliers()["block2.0.weight"] == 0.1
        plan = apply_strategy(TinyNet(), TopTwo())
        assert plan.summary().strategy == "TopTwo()"
        with pytest.raises(ConfigError, match="constructor"):
            apply_strategy(TinyNet(), TopTwo(), n=2)
    finally:
        STRATEGIES.unregister("top_two")
    with pytest.raises(ConfigError, match="strategy name"):
        apply_strategy(TinyNet(), 3)


def test_a_strategy_that_freezes_everything_is_an_error():
    class Nothing(Strategy):
        def trainable(self, model, stages, level):
            return set()

    with pytest.raises(ConfigError, match="leaves no parameter trainable"):
        apply_strategy(TinyNet(), Nothing())


def test_create_strategy_checks_and_builds():
    assert create_strategy("freeze_first", n=2).options() == {"n": 2}
    with pytest.raises(UnknownNameError):
        create_strategy("nope")
