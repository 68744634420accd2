"""convert_to_scratch / convert_to_torch, and a converted ResNet-18 against the original."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.scratch import (
    ScratchConv2d,
    ScratchLinear,
    ScratchMaxPool2d,
    ScratchReLU,
    convert_to_scratch,
    convert_to_torch,
    tf32_disabled,
)

from .helpers import assert_rel_close

torchvision = pytest.importorskip("torchvision")


def _resnet18(dtype=torch.float64):
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).to(dtype)


def _logits_and_grads(model, x, mix):
    """Train-mode forward on ``x``, loss ``sum(logits * mix)``; logits and every param grad."""
    model.train()
    logits = model(x)
    (logits * mix).sum().backward()
    return logits.detach(), {n: p.grad for n, p in model.named_parameters()}


def _compare_resnet(device, dtype, image_size, rel):
    original = _resnet18().to(device)
    converted = convert_to_scratch(original).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, image_size, image_size, generator=gen, dtype=torch.float64)
    mix = torch.randn(2, 1000, generator=gen, dtype=torch.float64)
    x, mix = x.to(device), mix.to(device)
    with tf32_disabled():
        ref_logits, ref_grads = _logits_and_grads(original, x, mix)
        logits, grads = _logits_and_grads(converted, x.to(dtype), mix.to(dtype))
    assert_rel_close(logits, ref_logits, rel, "logits")
    assert grads.keys() == ref_grads.keys() and len(grads) == 62
    for name, grad in grads.items():
        assert_rel_close(grad, ref_grads[name], rel, name)


def test_resnet18_converted_has_same_logits_and_grads_float64():
    # A 2x3x64x64 batch in float64, train mode: every conv, ReLU, max pool and the fc layer run
    # the scratch code; BatchNorm and the adaptive average pool stay PyTorch's. Tolerance 1e-10
    # relative. (At 32x32 layer4's BatchNorm normalises 2 values per channel, which makes the
    # gradients so ill-conditioned that two float64 summation orders already differ by 1e-9.)
    _compare_resnet("cpu", torch.float64, 64, 1e-10)


def test_resnet18_converted_float32_against_float64_original():
    # float32 through 18 layers against the float64 original: 1e-4 relative (MODEL_TOLERANCES).
    _compare_resnet("cpu", torch.float32, 64, 1e-4)


@pytest.mark.cuda
def test_resnet18_converted_matches_cudnn():
    _compare_resnet("cuda", torch.float64, 64, 1e-10)
    _compare_resnet("cuda", torch.float32, 64, 1e-4)


def test_convert_swaps_every_supported_layer_and_keeps_parameters():
    original = _resnet18()
    converted = convert_to_scratch(original)
    kinds = [type(m) for m in converted.modules()]
    assert kinds.count(ScratchConv2d) == 20 and nn.Conv2d not in kinds
    assert kinds.count(ScratchLinear) == 1 and kinds.count(ScratchMaxPool2d) == 1
    assert ScratchReLU in kinds and nn.ReLU not in kinds
    assert nn.BatchNorm2d in kinds  # not a scratch layer: left alone
    assert type(original.conv1) is nn.Conv2d  # inplace=False converts a copy
    assert converted.state_dict().keys() == original.state_dict().keys()
    for key, value in original.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key

    back = convert_to_torch(converted, inplace=True)
    assert back is converted
    assert {type(m) for m in back.modules()}.isdisjoint(
        {ScratchConv2d, ScratchLinear, ScratchMaxPool2d, ScratchReLU}
    )
    assert back.conv1.weight is converted.conv1.weight  # the same Parameter objects


def test_convert_keeps_training_mode_requires_grad_and_a_root_layer():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3, 2)).eval()
    model[0].weight.requires_grad_(False)
    converted = convert_to_scratch(model, inplace=True)
    assert converted is model and type(model[0]) is ScratchConv2d
    assert not model[0].training and not model[0].weight.requires_grad
    assert model[1].inplace
    assert type(convert_to_scratch(nn.Conv2d(1, 1, 1))) is ScratchConv2d


def test_convert_leaves_subclasses_alone_and_rejects_other_padding_modes():
    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(MyConv(1, 1, 1))
    assert type(convert_to_scratch(model)[0]) is MyConv
    bad = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Sequential(nn.Conv2d(1, 1, 3, padding_mode="reflect")))
    with pytest.raises(ConfigError, match=r"layer '1.0' uses padding_mode='reflect'"):
        convert_to_scratch(copy.deepcopy(bad))
