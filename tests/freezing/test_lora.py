"""LoRA layers: shapes, zero update at initialisation, merge/unmerge of a single layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.freezing.lora import (
    LoRAConv2d,
    LoRALayer,
    LoRALinear,
    check_lora_options,
    lora_layers,
    lora_param_names,
)


@pytest.mark.parametrize("rank, alpha", [(0, 8), (2.0, 8), (True, 8), (4, 0), (4, -1.0), (4, "8")])
def test_check_lora_options_rejects_bad_values(rank, alpha):
    with pytest.raises(ConfigError, match="LoRA (rank|alpha)"):
        check_lora_options(rank, alpha)


def test_check_lora_options_returns_an_int_rank_and_a_float_alpha():
    assert check_lora_options(3, 6) == (3, 6.0)
    assert isinstance(check_lora_options(3, 6)[1], float)


def test_layers_compute_their_base_at_initialisation_and_follow_its_dtype():
    torch.manual_seed(0)
    linear = LoRALinear(nn.Linear(5, 3).double(), rank=2, alpha=4)
    conv = LoRAConv2d(nn.Conv2d(2, 4, 3, stride=2, padding=1, padding_mode="reflect"), rank=3)
    x, img = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 2, 7, 7)
    assert torch.equal(linear(x), linear.base(x)) and torch.equal(conv(img), conv.base(img))
    assert linear.lora_a.weight.dtype == torch.float64 and linear.scaling == 2.0
    assert conv.lora_a.stride == (2, 2) and conv.lora_a.padding_mode == "reflect"
    assert conv.delta_weight().shape == conv.base.weight.shape
    assert "rank=3, alpha=8, merged=False" in repr(conv)


def test_merge_then_unmerge_of_one_layer_round_trips():
    torch.manual_seed(0)
    layer = LoRAConv2d(nn.Conv2d(3, 5, 3, padding=1).double(), rank=2)
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    y, w = layer(x), layer.base.weight.clone()
    layer.merge()
    layer.merge()  # idempotent
    assert layer.merged
    torch.testing.assert_close(layer(x), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.base(x), y, rtol=1e-12, atol=1e-12)
    layer.unmerge()
    layer.unmerge()
    assert not layer.merged
    torch.testing.assert_close(layer.base.weight, w, rtol=0, atol=1e-12)


def test_grouped_convolutions_are_refused():
    with pytest.raises(ConfigError, match="groups=2"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2))


def test_seeded_initialisation_is_reproducible():
    a = LoRALinear(nn.Linear(4, 4), seed=7).lora_a.weight
    b = LoRALinear(nn.Linear(4, 4), seed=7).lora_a.weight
    c = LoRALinear(nn.Linear(4, 4), seed=8).lora_a.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_lora_layers_and_param_names_find_nested_wrappers():
    net = nn.Sequential(nn.Sequential(LoRALinear(nn.Linear(2, 2))), nn.ReLU(), LoRAConv2d(nn.Conv2d(1, 1, 1)))
    assert [(name, type(m)) for name, m in lora_layers(net)] == [("0.0", LoRALinear), ("2", LoRAConv2d)]
    assert all(isinstance(m, LoRALayer) for _, m in lora_layers(net))
    assert lora_param_names(net) == [
        "0.0.lora_a.weight",
        "0.0.lora_b.weight",
        "2.lora_a.weight",
        "2.lora_b.weight",
    ]
    assert lora_layers(nn.Linear(2, 2)) == [] and lora_param_names(nn.Linear(2, 2)) == []
