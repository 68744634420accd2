"""The hand-written backward passes against PyTorch's autograd, on random configurations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings

from finetune_kit.errors import ShapeError
from finetune_kit.scratch import (
    conv2d_backward,
    conv2d_backward_naive,
    conv2d_input_grad,
    conv2d_weight_grad,
    tf32_disabled,
)

from .helpers import (
    REL_TOL,
    ConvCase,
    assert_rel_close,
    conv_cases,
    conv_magnitudes,
    torch_conv_grads,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def test_hand_computed_backward():
    # y = conv(x, w) with x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]] and dL/dy = ones(2x2).
    # dL/dw[i,j] = sum of the 2x2 block of x starting at (i,j) (x correlated with dL/dy):
    #   [[1+2+4+5, 2+3+5+6], [4+5+7+8, 5+6+8+9]] = [[12, 16], [24, 28]]
    # dL/dx = ones(2x2) fully convolved with the flipped kernel: pixel (h,w) collects w[h-oh, w-ow]
    # from each output (oh,ow) whose window covers it:
    #   [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]] = [[1, 3, 2], [4, 10, 6], [3, 7, 4]]
    # dL/db = 4 outputs * 1 = 4
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    g = torch.ones(1, 1, 2, 2)
    expected_x = torch.tensor([[[[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]]])
    expected_w = torch.tensor([[[[12.0, 16.0], [24.0, 28.0]]]])
    for backward in (conv2d_backward, conv2d_backward_naive):
        gx, gw, gb = backward(g, x, w)
        assert torch.equal(gx, expected_x)
        assert torch.equal(gw, expected_w)
        assert torch.equal(gb, torch.tensor([4.0]))
    assert torch.equal(conv2d_input_grad(x.shape, w, g), expected_x)
    assert torch.equal(conv2d_weight_grad(x, w.shape, g), expected_w)
    _, _, ref_x, ref_w, _ = torch_conv_grads(
        ConvCase(1, 1, 1, (3, 3), (2, 2), 1, 0, 1, 1, True), x, w, torch.zeros(1), g
    )
    assert torch.equal(ref_x, expected_x) and torch.equal(ref_w, expected_w)


def _check_all_backwards(case, dtype, naive=True):
    x, w, b = case.tensors()
    _, g, ref_x, ref_w, ref_b = torch_conv_grads(case, x, w, b)
    _, scale_x, scale_w, scale_b = conv_magnitudes(case, x, w, b, g)
    rel = REL_TOL[dtype]
    low_x, low_w, low_g = x.to(dtype), w.to(dtype), g.to(dtype)
    with tf32_disabled():
        candidates = {"im2col": conv2d_backward(low_g, low_x, low_w, **case.args)}
        if naive:
            candidates["naive"] = conv2d_backward_naive(low_g, low_x, low_w, **case.args)
        candidates["full conv / correlation"] = (
            conv2d_input_grad(x.shape, low_w, low_g, **case.args),
            conv2d_weight_grad(low_x, w.shape, low_g, **case.args),
            ref_b,
        )
    for name, (gx, gw, gb) in candidates.items():
        assert gx.dtype == dtype and gw.dtype == dtype, name
        assert_rel_close(gx, ref_x, rel, f"{name} grad_x", scale_x)
        assert_rel_close(gw, ref_w, rel, f"{name} grad_weight", scale_w)
        if b is not None:
            assert_rel_close(gb, ref_b, rel, f"{name} grad_bias", scale_b)


@settings(max_examples=50, deadline=None)
@given(case=conv_cases())
@example(case=ConvCase(2, 2, 4, (7, 5), (1, 1), 3, 0, 1, 2, True))  # 1x1, stride > kernel
@example(case=ConvCase(1, 3, 3, (4, 7), (2, 3), 1, "same", (1, 2), 1, True))  # asymmetric same
@example(case=ConvCase(1, 2, 2, (8, 8), (3, 3), (3, 2), (2, 1), 2, 2, True))  # uncovered rows
def test_backwards_match_autograd_float64(case):
    _check_all_backwards(case, torch.float64)


@settings(max_examples=40, deadline=None)
@given(case=conv_cases())
def test_backwards_match_autograd_float32(case):
    _check_all_backwards(case, torch.float32, naive=False)


def test_naive_backward_float32():
    _check_all_backwards(ConvCase(2, 4, 4, (6, 7), (3, 2), (2, 1), (1, 1), 1, 2, True), torch.float32)


def test_needs_grad_skips_work():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    gx, gw, gb = conv2d_backward(torch.ones(1, 3, 3, 3), x, w, needs_grad=(False, True, False))
    assert gx is None and gb is None and gw.shape == w.shape


def test_grad_out_shape_is_checked():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"grad_out must have the forward output's shape"):
        conv2d_backward(torch.ones(1, 3, 5, 5), x, w)
    with pytest.raises(ShapeError, match=r"\(1, 3, 3, 3\)"):
        conv2d_backward_naive(torch.ones(1, 3, 4, 4), x, w)
