"""LoRA for Conv2d/Linear and BitFit: exact at initialisation, exact when merged."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.freezing import apply_strategy, plan_from_state
from finetune_kit.freezing.lora import LoRAConv2d, LoRALinear, lora_layers, lora_param_names
from finetune_kit.freezing.peft import add_lora, bitfit_param_names, merge_lora, unmerge_lora
from finetune_kit.models import create_model


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.proj = nn.Linear(6, 5)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.relu(self.proj(x.mean(dim=(2, 3)))))


def _randomise_lora(model: nn.Module, seed: int = 0) -> None:
    """Give B non-zero values, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            w = layer.lora_b.weight
            w.copy_(torch.randn(w.shape, generator=gen, dtype=w.dtype) * 0.5)


def test_lora_at_initialisation_leaves_the_output_unchanged():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4, in_channels=1, small_input=True).eval()
    x = torch.randn(2, 1, 16, 16)
    before = model(x)
    plan = apply_strategy(model, "lora", rank=2, alpha=4)
    assert torch.equal(model.eval()(x), before)
    assert type(model.fc) is not LoRALinear  # the head trains in full
    assert isinstance(model.layer1[0].conv1, LoRAConv2d)
    names = plan.trainable_names()
    assert set(names) == set(lora_param_names(model)) | {"fc.weight", "fc.bias"}
    # every BatchNorm is frozen and stays in eval mode
    assert all(r.batchnorm in ("eval", "-") for r in plan.summary().rows)


def test_merged_model_gives_the_unmerged_output_and_plain_keys():
    torch.manual_seed(0)
    model = SmallNet().double().eval()
    keys = sorted(model.state_dict())
    add_lora(model, rank=3, alpha=6, exclude=["fc"])
    _randomise_lora(model)
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64)
    y = model(x)
    plain = merge_lora(model)
    assert lora_layers(plain) == []
    assert sorted(plain.state_dict()) == keys
    assert type(plain.conv) is nn.Conv2d and type(plain.proj) is nn.Linear
    torch.testing.assert_close(plain(x), y, rtol=1e-12, atol=1e-12)


def test_merge_without_unload_then_unmerge_restores_the_weights():
    torch.manual_seed(0)
    model = SmallNet().eval()
    add_lora(model, exclude=["fc"])
    _randomise_lora(model)
    x = torch.randn(2, 2, 5, 5)
    y = model(x)
    w = model.conv.base.weight.clone()
    merge_lora(model, unload=False)
    assert model.conv.merged and not torch.equal(model.conv.base.weight, w)
    torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model.conv.base.weight, w, rtol=0, atol=1e-6)
    torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="unload=False"):
        unmerge_lora(merge_lora(model))


@settings(max_examples=40, deadline=None)
@given(
    kernel=st.sampled_from([1, 3, (3, 1), 5]),
    stride=st.integers(1, 2),
    padding=st.sampled_from([0, 1, 2]),
    dilation=st.integers(1, 2),
    padding_mode=st.sampled_from(["zeros", "reflect", "circular"]),
    rank=st.integers(1, 4),
    bias=st.booleans(),
)
def test_conv_merge_is_exact_for_any_geometry(kernel, stride, padding, dilation, padding_mode, rank, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(
        3, 5, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias, padding_mode=padding_mode
    ).double()
    layer = LoRAConv2d(conv, rank=rank, alpha=2.0)
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    y = layer(x)
    merged = merge_lora(layer)
    assert merged is conv
    torch.testing.assert_close(merged(x), y, rtol=1e-10, atol=1e-10)


def test_linear_lora_shapes_scaling_and_merge():
    base = nn.Linear(6, 4).double()
    layer = LoRALinear(base, rank=2, alpha=3)
    assert layer.scaling == 1.5
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    x = torch.randn(5, 6, dtype=torch.float64)
    y = layer(x)
    torch.testing.assert_close(merge_lora(layer)(x), y)


def test_state_dict_keys_are_predictable():
    model = SmallNet()
    add_lora(model, exclude=["fc"])
    keys = sorted(model.state_dict())
    assert "conv.base.weight" in keys and "conv.base.bias" in keys
    assert "conv.lora_a.weight" in keys and "conv.lora_b.weight" in keys
    assert "proj.lora_a.weight" in keys and "fc.weight" in keys
    assert "dw.weight" in keys  # grouped convolutions are not targeted by "conv"


def test_targets_patterns_and_errors():
    model = SmallNet()
    assert add_lora(model, targets="proj") == ["proj"]
    assert add_lora(model, targets=["conv", "linear"], exclude=["fc"]) == ["conv"]  # proj done
    with pytest.raises(UnknownNameError, match="matches no Conv2d or Linear"):
        add_lora(SmallNet(), targets=["blocks.*"])
    with pytest.raises(ConfigError, match="grouped"):
        add_lora(SmallNet(), targets=["dw"])
    with pytest.raises(ConfigError, match="rank"):
        add_lora(SmallNet(), rank=0)
    with pytest.raises(ConfigError, match="alpha"):
        add_lora(SmallNet(), alpha=-1)
    with pytest.raises(ConfigError, match="empty"):
        add_lora(SmallNet(), targets=[])
    with pytest.raises(ConfigError, match="groups"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2))


def test_lora_strategy_is_idempotent_and_follows_dtype():
    model = SmallNet().double()
    apply_strategy(model, "lora", rank=2)
    a = model.conv.lora_a.weight.clone()
    plan = apply_strategy(model, "lora", rank=2)
    assert torch.equal(model.conv.lora_a.weight, a)  # not wrapped twice, not re-initialised
    assert model.conv.lora_a.weight.dtype == torch.float64
    assert not isinstance(model.conv.base, LoRAConv2d)
    assert plan.strategy.describe() == "lora(rank=2, alpha=8.0, targets=['conv', 'linear'], seed=0)"


def test_lora_initialisation_is_seeded():
    one, two = SmallNet(), SmallNet()
    add_lora(one, seed=3)
    add_lora(two, seed=3)
    assert torch.equal(one.conv.lora_a.weight, two.conv.lora_a.weight)
    assert not torch.equal(one.conv.lora_a.weight.flatten()[:5], one.proj.lora_a.weight.flatten()[:5])


def test_bitfit_trains_biases_norms_and_the_head():
    model = SmallNet()
    assert bitfit_param_names(model) == [
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "dw.bias",
        "proj.bias",
        "fc.bias",
    ]
    plan = apply_strategy(model, "bitfit")
    assert set(plan.trainable_names()) == set(bitfit_param_names(model)) | {"fc.weight"}
    assert not model.conv.weight.requires_grad and model.bn.weight.requires_grad
    plan = apply_strategy(model, "bitfit", train_head=False)
    assert "fc.weight" not in plan.trainable_names()
    plan = apply_strategy(model, "bitfit", bn_policy="frozen_affine")
    assert "bn.weight" not in plan.trainable_names() and "conv.bias" in plan.trainable_names()


def test_lora_trains_only_adapters_and_head_end_to_end():
    torch.manual_seed(0)
    model = SmallNet()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    plan = apply_strategy(model, "lora", rank=2)
    opt = torch.optim.AdamW(plan.param_groups(weight_decay=0.1), lr=0.05)
    for _ in range(3):
        model.train()
        loss = model(torch.randn(4, 2, 6, 6)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = model.state_dict()
    for key, value in frozen.items():
        lora_key = key.replace("conv.", "conv.base.").replace("proj.", "proj.base.")
        assert torch.equal(value, state[lora_key if lora_key in state else key]), key
    assert model.conv.lora_b.weight.abs().sum() > 0


def test_plan_from_state_rebuilds_lora_layers_so_weights_load():
    torch.manual_seed(0)
    model = SmallNet()
    plan = apply_strategy(model, "lora", rank=2)
    _randomise_lora(model)
    weights, saved = model.state_dict(), plan.state_dict()
    fresh = SmallNet()
    again = plan_from_state(fresh, saved)
    fresh.load_state_dict(weights)
    x = torch.randn(2, 2, 5, 5)
    assert torch.equal(fresh.eval()(x), model.eval()(x))
    assert again.trainable_names() == plan.trainable_names()


def test_lora_with_nothing_to_adapt_is_an_error():
    with pytest.raises(ConfigError, match="nothing to adapt"):
        apply_strategy(nn.Sequential(nn.Linear(2, 2)), "lora")
