"""Pooling, ReLU and linear (forward and hand-written backward) against PyTorch in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.scratch import (
    avg_pool2d,
    avg_pool2d_backward,
    linear,
    linear_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)

from .helpers import assert_rel_close

POOLS = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),  # the ResNet stem's max pool
    (3, 2, 1, 1, True),
    (3, 2, 0, 1, True),  # the last window runs past the edge
    ((2, 3), (1, 2), (1, 1), 1, False),
    (3, 1, 1, 2, False),
    (1, 3, 0, 1, False),  # stride larger than the kernel
]


def _input(shape=(2, 3, 8, 9), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "ceil_mode"), POOLS)
def test_max_pool_matches_pytorch(kernel, stride, padding, dilation, ceil_mode):
    x = _input()
    ref, ref_idx = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
    grad_out = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out)
    out, idx = max_pool2d(x.detach(), kernel, stride, padding, dilation, ceil_mode, True)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    assert torch.equal(max_pool2d(x.detach(), kernel, stride, padding, dilation, ceil_mode), ref)
    assert_rel_close(max_pool2d_backward(grad_out, idx, x.shape), ref_grad, 1e-12, "grad")


def test_max_pool_ties_go_to_the_first_maximum_like_pytorch():
    # After a ReLU many windows are all zeros; the gradient must go where PyTorch sends it.
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 3, 3] = -1.0
    _, ref_idx = F.max_pool2d(x, 3, 1, 1, return_indices=True)
    _, idx = max_pool2d(x, 3, 1, 1, return_indices=True)
    assert torch.equal(idx, ref_idx)


@pytest.mark.parametrize(("kernel", "stride", "padding", "_d", "ceil_mode"), POOLS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_pytorch(kernel, stride, padding, _d, ceil_mode, count_include_pad):
    x = _input()
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    ref = F.avg_pool2d(x, *args)
    grad_out = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out)
    assert_rel_close(avg_pool2d(x.detach(), *args), ref, 1e-12, "output")
    assert_rel_close(avg_pool2d_backward(grad_out, x.shape, *args), ref_grad, 1e-12, "grad")


def test_avg_pool_divisor_override():
    x = _input()
    ref = F.avg_pool2d(x, 3, 2, 1, divisor_override=4)
    grad_out = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out)
    assert_rel_close(avg_pool2d(x.detach(), 3, 2, 1, divisor_override=4), ref, 1e-12)
    got = avg_pool2d_backward(grad_out, x.shape, 3, 2, 1, divisor_override=4)
    assert_rel_close(got, ref_grad, 1e-12)


def test_relu_and_backward_match_pytorch():
    x = torch.tensor([-2.0, -0.0, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    ref = F.relu(x)
    grad_out = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out)
    out = relu(x.detach())
    assert torch.equal(out, ref)
    assert torch.equal(relu_backward(grad_out, out), ref_grad)  # zero gradient at x == 0


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
def test_linear_and_backward_match_pytorch(shape):
    x, w, b = _input(shape), _input((4, 5), seed=1), _input((4,), seed=2)
    ref = F.linear(x, w, b)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, w, b), grad_out)
    assert_rel_close(linear(x.detach(), w.detach(), b.detach()), ref, 1e-12, "output")
    grads = linear_backward(grad_out, x.detach(), w.detach())
    for got, expected, name in zip(grads, ref_grads, ("x", "w", "b"), strict=True):
        assert_rel_close(got, expected, 1e-12, f"grad_{name}")


def test_layer_errors():
    with pytest.raises(ConfigError, match="at most half the kernel"):
        max_pool2d(torch.zeros(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(ShapeError, match=r"x must be \(N, C, H, W\)"):
        avg_pool2d(torch.zeros(5, 5), 2)
    with pytest.raises(ShapeError, match="output size would be below 1"):
        max_pool2d(torch.zeros(1, 1, 2, 2), 3)
    with pytest.raises(ShapeError, match="in_features=4"):
        linear(torch.zeros(2, 3), torch.zeros(5, 4))
    with pytest.raises(ShapeError, match="must match"):
        max_pool2d_backward(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3, dtype=torch.long), (1, 1, 4, 4))
