"""conv2d_naive: a hand-computed example first, then random cases against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.scratch import conv2d_naive
from finetune_kit.scratch._args import output_size

from .helpers import REL_TOL, ConvCase, assert_rel_close, conv_cases

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

X = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
W = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])


def test_hand_computed_3x3_example():
    # x = 1 2 3    w = 1 2    H_out = floor((3 + 0 - 1*(2-1) - 1) / 1) + 1 = 2
    #     4 5 6        3 4
    #     7 8 9
    # y[0,0] = 1*1 + 2*2 + 3*4 + 4*5 = 1 + 4 + 12 + 20 = 37
    # y[0,1] = 1*2 + 2*3 + 3*5 + 4*6 = 2 + 6 + 15 + 24 = 47
    # y[1,0] = 1*4 + 2*5 + 3*7 + 4*8 = 4 + 10 + 21 + 32 = 67
    # y[1,1] = 1*5 + 2*6 + 3*8 + 4*9 = 5 + 12 + 24 + 36 = 77   (+ bias 0.5 each)
    expected = torch.tensor([[[[37.5, 47.5], [67.5, 77.5]]]])
    out = conv2d_naive(X, W, torch.tensor([0.5]))
    assert torch.equal(out, expected)
    assert torch.equal(F.conv2d(X, W, torch.tensor([0.5])), expected)  # PyTorch agrees


def test_hand_computed_padding_and_stride():
    # padding=1, stride=2: H_out = floor((3 + 2 - 1 - 1) / 2) + 1 = 2. Padded x (5x5) has a zero
    # border; the windows start at rows/cols 0 and 2:
    # y[0,0] = window [[0,0],[0,1]] -> 4*1                     = 4
    # y[0,1] = window [[0,0],[2,3]] -> 3*2 + 4*3               = 18
    # y[1,0] = window [[0,4],[0,7]] -> 2*4 + 4*7               = 36
    # y[1,1] = window [[5,6],[8,9]] -> 5 + 2*6 + 3*8 + 4*9     = 77
    expected = torch.tensor([[[[4.0, 18.0], [36.0, 77.0]]]])
    assert torch.equal(conv2d_naive(X, W, stride=2, padding=1), expected)
    assert torch.equal(F.conv2d(X, W, stride=2, padding=1), expected)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(3, 2, 1, 0, 1), (32, 3, 2, 1, 1), (224, 7, 2, 3, 1), (7, 3, 3, 0, 2), (5, 1, 3, 0, 1)],
)
def test_output_size_formula_matches_pytorch(size, kernel, stride, padding, dilation):
    # H_out = floor((H + 2p - d(k-1) - 1) / s) + 1
    x = torch.zeros(1, 1, size, size)
    w = torch.zeros(1, 1, kernel, kernel)
    expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1]
    got = output_size(size, kernel=kernel, stride=stride, padding=(padding, padding), dilation=dilation)
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(case=conv_cases())
@example(case=ConvCase(1, 2, 2, (5, 4), (1, 1), 3, 0, 1, 1, True))  # 1x1, stride > kernel
@example(case=ConvCase(2, 3, 3, (4, 6), (2, 3), 1, "same", (1, 2), 3, False))  # asymmetric "same"
def test_naive_matches_pytorch_float64(case):
    x, w, b = case.tensors()
    ref = F.conv2d(x, w, b, **case.args)
    scale = F.conv2d(x.abs(), w.abs(), b.abs() if b is not None else None, **case.args)
    out = conv2d_naive(x, w, b, **case.args)
    assert_rel_close(out, ref, REL_TOL[torch.float64], "output", scale)


def test_naive_matches_pytorch_float32():
    case = ConvCase(2, 4, 6, (7, 6), (3, 2), (2, 1), (1, 0), (1, 2), 2, True)
    x, w, b = case.tensors()
    ref = F.conv2d(x, w, b, **case.args)
    out = conv2d_naive(x.float(), w.float(), b.float(), **case.args)
    assert out.dtype == torch.float32
    assert_rel_close(out, ref, REL_TOL[torch.float32], "output")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "error", "match"),
    [
        (
            (3, 5, 5),
            (2, 3, 3, 3),
            {},
            ShapeError,
            r"x must be \(N, C, H, W\), got shape \(3, 5, 5\)",
        ),
        ((1, 3, 5, 5), (2, 3, 3), {}, ShapeError, "weight must be"),
        ((1, 4, 5, 5), (2, 3, 3, 3), {}, ShapeError, r"expects 3 input channels.*\(1, 4, 5, 5\)"),
        ((1, 3, 5, 5), (2, 1, 3, 3), {"groups": 3}, ShapeError, "divisible by groups"),
        ((1, 3, 2, 2), (2, 3, 3, 3), {}, ShapeError, r"output size would be \(0, 0\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": "full"}, ConfigError, "'same' or 'valid'"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": "same", "stride": 2}, ConfigError, "stride 1"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": -1}, ConfigError, "padding must be >= 0"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": 0}, ConfigError, "stride must be >= 1"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": True}, ConfigError, "int or a pair"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"dilation": (1, 2, 3)}, ConfigError, "int or a pair"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"groups": 0}, ConfigError, "groups must be"),
    ],
)
def test_bad_input_raises_clear_errors(x_shape, w_shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv2d_naive(torch.zeros(x_shape), torch.zeros(w_shape), **kwargs)


def test_bad_bias_shape():
    with pytest.raises(ShapeError, match=r"bias must have shape \(2,\)"):
        conv2d_naive(torch.zeros(1, 3, 5, 5), torch.zeros(2, 3, 3, 3), torch.zeros(3))
