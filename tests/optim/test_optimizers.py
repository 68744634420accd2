"""Optimizer factory and parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.optim import (
    OPTIMIZERS,
    add_param_group,
    create_optimizer,
    list_optimizers,
    param_groups,
    register_optimizer,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)
        self.norm = nn.LayerNorm(2)
        self.token = nn.Parameter(torch.zeros(1, 2))

    def forward(self, x):
        x = self.bn(self.conv(x)).mean(dim=(2, 3))
        return self.norm(self.head(x)) + self.token


def names_by_group(model, groups):
    lookup = {id(p): n for n, p in model.named_parameters()}
    return [sorted(lookup[id(p)] for p in g["params"]) for g in groups]


def test_norm_and_bias_parameters_get_no_weight_decay():
    model = Net()
    groups = param_groups(model, weight_decay=0.05)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert names_by_group(model, groups) == [
        ["conv.weight", "head.weight", "token"],
        ["bn.bias", "bn.weight", "conv.bias", "head.bias", "norm.bias", "norm.weight"],
    ]
    assert all(g["lr_mult"] == 1.0 for g in groups)


def test_no_decay_switch_and_zero_decay_give_one_group():
    model = Net()
    for groups in (
        param_groups(model, weight_decay=0.05, no_decay_norm_bias=False),
        param_groups(model, weight_decay=0.0),
    ):
        assert [g["name"] for g in groups] == ["all"]
        assert len(groups[0]["params"]) == len(list(model.parameters()))


def test_model_no_weight_decay_hook_is_honoured():
    model = Net()
    model.no_weight_decay = lambda: {"token"}
    groups = param_groups(model, weight_decay=0.1)
    no_decay = [
        names
        for g, names in zip(groups, names_by_group(model, groups), strict=True)
        if g["name"] == "no_decay"
    ]
    assert "token" in no_decay[0]


def test_frozen_parameters_are_left_out_and_every_trainable_one_appears_once():
    model = Net()
    model.conv.requires_grad_(False)
    multipliers = {"bn.weight": 0.1, "bn.bias": 0.1, "head.weight": 0.5, "conv.weight": 0.1}
    groups = param_groups(model, weight_decay=0.01, lr_multipliers=multipliers)
    seen = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"decay lr_mult=0.5", "no_decay lr_mult=0.1", "no_decay", "decay"}
    assert by_name["no_decay lr_mult=0.1"]["lr_mult"] == 0.1
    opt = create_optimizer(groups, "sgd", lr=0.2)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.02, 0.1, 0.2, 0.2])


def test_create_optimizer_from_a_model_with_lr_multipliers():
    model = Net()
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, lr_multipliers={"conv.weight": 0.01})
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"decay lr_mult=0.01": 0.001, "decay": 0.1, "no_decay": 0.1})
    assert opt.defaults["lr"] == 0.1


def test_bad_lr_multipliers_are_reported():
    with pytest.raises(ConfigError, match=r"Did you mean 'conv\.weight'"):
        param_groups(Net(), weight_decay=0.0, lr_multipliers={"conv.weigth": 0.1})
    with pytest.raises(ConfigError, match=">= 0"):
        param_groups(Net(), weight_decay=0.0, lr_multipliers={"conv.weight": -1.0})


def test_parameters_and_group_dicts_are_accepted():
    a, b = nn.Parameter(torch.zeros(3, 3)), nn.Parameter(torch.zeros(3))
    opt = create_optimizer([a, b], "adamw", lr=1e-3, weight_decay=0.1)
    assert [(g["weight_decay"], len(g["params"])) for g in opt.param_groups] == [(0.1, 1), (0.0, 1)]
    opt = create_optimizer([{"params": [a]}, {"params": [b], "lr": 5e-4}], "adam", lr=1e-3)
    assert [g["lr_mult"] for g in opt.param_groups] == [1.0, 0.5]
    assert [g["name"] for g in opt.param_groups] == ["group0", "group1"]
    with pytest.raises(ConfigError, match="only one of them"):
        create_optimizer([{"params": [a], "lr": 0.1, "lr_mult": 0.5}], "sgd", lr=1.0)
    with pytest.raises(ConfigError, match="lr_multipliers needs a model"):
        create_optimizer([a], "sgd", lr=0.1, lr_multipliers={"p0": 0.5})


def test_common_hyper_parameters_reach_the_optimizers_that_have_them():
    model = nn.Linear(2, 2)
    sgd = create_optimizer(model, "sgd", lr=0.1, nesterov=True)
    assert (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.9, True)
    adam = create_optimizer(model, "adam", lr=0.1, betas=(0.8, 0.99), eps=1e-6, amsgrad=True)
    assert (adam.defaults["betas"], adam.defaults["eps"], adam.defaults["amsgrad"]) == (
        (0.8, 0.99),
        1e-6,
        True,
    )
    assert "momentum" not in adam.defaults
    assert create_optimizer(model, "rmsprop", lr=0.1).defaults["momentum"] == 0.9
    assert create_optimizer(model, "adagrad", lr=0.1).defaults["eps"] == 1e-10  # its own default
    assert create_optimizer(model, "sgd", lr=0.1, foreach=False).defaults["foreach"] is False


def test_option_errors_are_config_errors():
    model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="'nadam'"):
        create_optimizer(model, "adam", lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="momentum > 0"):
        create_optimizer(model, "sgd", lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ConfigError, match="no weight decay"):
        create_optimizer(model, "rprop", lr=0.1, weight_decay=0.1)
    with pytest.raises(ConfigError, match="no fused"):
        create_optimizer(model, "adadelta", lr=0.1, fused=True)
    with pytest.raises(ConfigError, match="Did you mean 'amsgrad'"):
        create_optimizer(model, "adam", lr=0.1, amsgrd=True)
    with pytest.raises(ConfigError, match="beta"):
        create_optimizer(model, "adam", lr=0.1, betas=(1.5, 0.9))
    with pytest.raises(ConfigError, match="lr must be > 0"):
        create_optimizer(model, "sgd", lr=0.0)
    with pytest.raises(UnknownNameError, match="adamw"):
        create_optimizer(model, "adamv", lr=0.1)
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        create_optimizer(model, "sgd", lr=0.1)


@pytest.mark.parametrize("name", list_optimizers())
def test_every_registered_optimizer_trains_a_step(name):
    torch.manual_seed(0)
    model = Net()
    opt = create_optimizer(model, name, lr=0.01, weight_decay=0.0 if name == "rprop" else 1e-4)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(4, 3, 5, 5)).pow(2).sum()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert all("lr_mult" in g and "name" in g for g in opt.param_groups)


def test_add_param_group_after_an_unfreeze():
    model = Net()
    model.conv.requires_grad_(False)
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4)
    model.conv.requires_grad_(True)
    in_optimizer = [p for g in opt.param_groups for p in g["params"]]
    new = param_groups(
        model, weight_decay=1e-4, lr_multipliers={"conv.weight": 0.1, "conv.bias": 0.1}, exclude=in_optimizer
    )
    assert names_by_group(model, new) == [["conv.weight"], ["conv.bias"]]
    for group in new:
        added = add_param_group(opt, None, group)
        assert added["lr"] == pytest.approx(0.01) and added["momentum"] == 0.9
    assert len(opt.param_groups) == 4


def test_register_optimizer():
    register_optimizer("my_sgd", torch.optim.SGD, uses=("momentum",))
    try:
        opt = create_optimizer(nn.Linear(1, 1), "my_sgd", lr=0.1, momentum=0.5)
        assert opt.defaults["momentum"] == 0.5
        with pytest.raises(ConfigError, match="uses may only name"):
            register_optimizer("bad_sgd", torch.optim.SGD, uses=("alpha",))
    finally:
        OPTIMIZERS.unregister("my_sgd")
