"""The nn.Module drop-ins: same constructor, init and state_dict as PyTorch's, same results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.scratch import (
    ScratchAvgPool2d,
    ScratchConv2d,
    ScratchLinear,
    ScratchMaxPool2d,
    ScratchReLU,
)

from .helpers import assert_rel_close

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

CONV_KWARGS = [
    {"in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {
        "in_channels": 4,
        "out_channels": 6,
        "kernel_size": (2, 3),
        "stride": (2, 1),
        "padding": (1, 0),
        "dilation": (1, 2),
        "groups": 2,
        "bias": False,
    },
    {"in_channels": 4, "out_channels": 4, "kernel_size": 4, "padding": "same", "groups": 4},
    {"in_channels": 3, "out_channels": 5, "kernel_size": 3, "padding": "valid"},
]


def _run(module, x, grad_out=None):
    """Forward and backward; returns the output and the gradients of x and the parameters."""
    x = x.detach().clone().requires_grad_()
    out = module(x)
    grad_out = torch.ones_like(out) if grad_out is None else grad_out
    out.backward(grad_out)
    return [out.detach(), x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("kwargs", CONV_KWARGS)
def test_scratch_conv2d_is_a_drop_in_for_nn_conv2d(kwargs):
    torch.manual_seed(0)
    ref = nn.Conv2d(**kwargs, dtype=torch.float64)
    torch.manual_seed(0)
    conv = ScratchConv2d(**kwargs, dtype=torch.float64)
    # Same initialisation from the same seed, same state_dict keys and shapes.
    assert conv.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        assert torch.equal(conv.state_dict()[key], value), key
    assert isinstance(conv, nn.Conv2d) and repr(conv).startswith("ScratchConv2d(")
    x = torch.randn(2, kwargs["in_channels"], 9, 8, dtype=torch.float64)
    for got, expected in zip(_run(conv, x), _run(ref, x), strict=True):
        assert_rel_close(got, expected, 1e-10)


def test_scratch_conv2d_accepts_unbatched_input_and_loads_a_torch_state_dict():
    ref = nn.Conv2d(3, 4, 3, padding=1)
    conv = ScratchConv2d(3, 4, 3, padding=1)
    conv.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 6)
    assert conv(x).shape == (4, 6, 6)
    assert_rel_close(conv(x), ref(x), 1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"padding_mode": "reflect"}, "padding_mode='zeros' only"),
        ({"groups": 2}, r"in_channels \(3\).*divisible by groups \(2\)"),
        ({"padding": "same", "stride": 2}, "stride 1"),
        ({"padding": "full"}, "'same' or 'valid'"),
    ],
)
def test_scratch_conv2d_rejects_what_it_cannot_do(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ScratchConv2d(3, 4, 3, **kwargs)


def test_scratch_linear_matches_nn_linear():
    torch.manual_seed(0)
    ref = nn.Linear(5, 3, dtype=torch.float64)
    torch.manual_seed(0)
    lin = ScratchLinear(5, 3, dtype=torch.float64)
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    for got, expected in zip(_run(lin, x), _run(ref, x), strict=True):
        assert_rel_close(got, expected, 1e-12)


@pytest.mark.parametrize("inplace", [False, True])
def test_scratch_relu_matches_nn_relu(inplace):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    grad_out = torch.randn(2, 3, 4, dtype=torch.float64)

    def run(module):
        leaf = x.clone().requires_grad_()
        out = module(leaf * 1.0)  # a non-leaf, so that inplace is allowed
        out.backward(grad_out)
        return out.detach(), leaf.grad

    for got, expected in zip(run(ScratchReLU(inplace)), run(nn.ReLU(inplace)), strict=True):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 2, "ceil_mode": True, "dilation": 1},
        {"kernel_size": (3, 2), "stride": 1, "dilation": (1, 2), "return_indices": True},
    ],
)
def test_scratch_max_pool_matches_nn_max_pool(kwargs):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    got, expected = ScratchMaxPool2d(**kwargs)(x), nn.MaxPool2d(**kwargs)(x)
    if kwargs.get("return_indices"):
        assert torch.equal(got[1], expected[1])
        got, expected = got[0], expected[0]
    assert torch.equal(got, expected)
    if not kwargs.get("return_indices"):
        for g, e in zip(_run(ScratchMaxPool2d(**kwargs), x), _run(nn.MaxPool2d(**kwargs), x), strict=True):
            assert torch.equal(g, e)
        assert ScratchMaxPool2d(**kwargs)(x[0]).shape == expected.shape[1:]  # unbatched


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},
        {
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ],
)
def test_scratch_avg_pool_matches_nn_avg_pool(kwargs):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    for got, expected in zip(
        _run(ScratchAvgPool2d(**kwargs), x), _run(nn.AvgPool2d(**kwargs), x), strict=True
    ):
        assert_rel_close(got, expected, 1e-12)
