"""BatchNorm policy: frozen BatchNorm stays frozen, statistics included, whatever the mode."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.freezing import apply_strategy
from finetune_kit.freezing.bn_policy import (
    BN_POLICIES,
    batchnorm_layers,
    check_bn_policy,
    is_batchnorm,
    set_keep_eval,
)


class TinyNet(nn.Module):
    """Four stages by top-level children: stem, block1, block2, head (fc)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
        self.block2 = nn.Sequential(
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block2(self.block1(self.stem(x))))


def _stats(module: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for b in module.buffers()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _train_steps(model: nn.Module, steps: int = 3) -> None:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        model.train()  # the loop calls train() every epoch: the policy must survive it
        x = torch.randn(6, 1, 8, 8, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_check_bn_policy_names_the_valid_choices():
    assert [check_bn_policy(p) for p in BN_POLICIES] == list(BN_POLICIES)
    with pytest.raises(ConfigError, match=r"'eval', 'train', 'frozen_affine'.*Did you mean 'eval'"):
        check_bn_policy("evl")
    with pytest.raises(ConfigError, match="bn_policy"):
        apply_strategy(TinyNet(), "full", bn_policy="frozen")


def test_is_batchnorm_and_listing():
    assert is_batchnorm(nn.BatchNorm1d(2)) and is_batchnorm(nn.SyncBatchNorm(2))
    assert not is_batchnorm(nn.GroupNorm(1, 2)) and not is_batchnorm(nn.InstanceNorm2d(2))
    assert [n for n, _ in batchnorm_layers(TinyNet())] == ["stem.1", "block1.1", "block2.1"]


def test_eval_policy_keeps_frozen_stats_fixed_through_train_calls():
    torch.manual_seed(0)
    model = TinyNet()
    apply_strategy(model, "freeze_first", n=2)  # stem and block1 frozen
    frozen_before = _stats(model.stem) + _stats(model.block1)
    live_before = _stats(model.block2)
    _train_steps(model)
    assert _same(frozen_before, _stats(model.stem) + _stats(model.block1))
    assert not _same(live_before, _stats(model.block2))  # trainable BN updates as usual
    assert not model.stem[1].training and not model.block1[1].training
    assert model.block2[1].training and model.training


def test_train_policy_lets_frozen_stats_update_with_affine_frozen():
    torch.manual_seed(0)
    model = TinyNet()
    apply_strategy(model, "freeze_first", n=2, bn_policy="train")
    stats = _stats(model.stem)
    affine = [p.clone() for p in model.stem[1].parameters()]
    _train_steps(model)
    assert not _same(stats, _stats(model.stem))
    assert _same(affine, [p.detach() for p in model.stem[1].parameters()])
    assert all(p.grad is None for p in model.stem.parameters())


def test_frozen_affine_fixes_every_batchnorm_even_in_trainable_stages():
    torch.manual_seed(0)
    model = TinyNet()
    plan = apply_strategy(model, "full", bn_policy="frozen_affine")
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if ".1." in k}
    conv = model.block2[0].weight.clone()
    _train_steps(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in bn_state.items())
    assert not torch.equal(conv, model.block2[0].weight)  # the rest trains
    assert all(not bn.weight.requires_grad for _, bn in batchnorm_layers(model))
    assert all(not bn.training for _, bn in batchnorm_layers(model))
    assert "block2.1.weight" not in plan.trainable_names()
    assert [r.batchnorm for r in plan.summary().rows] == ["eval", "eval", "eval", "-"]


def test_eval_mode_survives_deepcopy_and_repeated_application():
    model = TinyNet()
    for _ in range(3):
        apply_strategy(model, "linear_probe")
    bn = model.stem[1]
    assert len(bn._forward_pre_hooks) == 1  # one hook, however often the policy is applied
    twin = copy.deepcopy(model).train()
    stats = _stats(twin)
    twin(torch.randn(4, 1, 8, 8))
    assert _same(stats, _stats(twin))


def test_releasing_a_layer_gives_it_the_model_mode_back():
    model = TinyNet().train()
    plan = apply_strategy(model, "gradual_unfreeze", every=1)
    assert not model.block2[1].training
    plan.on_epoch_start(model, 1)
    assert model.block2[1].training and not model.block1[1].training
    stats = _stats(model.block2)
    model(torch.randn(4, 1, 8, 8))
    assert not _same(stats, _stats(model.block2))


def test_full_strategy_under_eval_policy_leaves_batchnorm_alone():
    model = TinyNet()
    plan = apply_strategy(model, "full")
    layers = batchnorm_layers(model)
    assert all(not getattr(bn, "finetune_kit_keep_eval", False) for _, bn in layers)
    assert {r.batchnorm for r in plan.summary().rows} == {"follows model", "-"}


def test_set_keep_eval_rejects_other_layers():
    with pytest.raises(ConfigError, match="BatchNorm"):
        set_keep_eval(nn.LayerNorm(3), True)


def test_affine_free_batchnorm_follows_its_stage():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False), nn.Linear(4, 2))
    plan = apply_strategy(model, "linear_probe")
    assert [s.module_names for s in plan.stages()] == [("0", "1"), ("2",)]
    assert plan.summary().rows[0].batchnorm == "eval"  # it joins the frozen stage "0"
    model.train()
    before = _stats(model)
    model(torch.randn(5, 3))
    assert _same(before, _stats(model))
    plan = apply_strategy(model, "full")
    model.train()(torch.randn(5, 3))
    assert not _same(before, _stats(model))
