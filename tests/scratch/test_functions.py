"""The autograd Functions: gradcheck in float64 and agreement with PyTorch's autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from finetune_kit.scratch import (
    AvgPool2dFunction,
    Conv2dFunction,
    LinearFunction,
    MaxPool2dFunction,
    ReLUFunction,
)

from .helpers import assert_rel_close

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _leaf(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "dilation", "groups"),
    [
        ((1, 2, 5, 6), (3, 2, 3, 3), 1, 1, 1, 1),
        ((1, 4, 7, 5), (6, 2, 2, 3), (2, 1), (1, 0), (1, 2), 2),
        ((1, 2, 4, 5), (2, 2, 2, 3), 1, "same", 1, 1),
        ((2, 2, 5, 5), (3, 2, 1, 1), 3, 0, 1, 1),
        ((1, 3, 6, 7), (3, 1, 3, 2), 2, "valid", 2, 3),
    ],
)
def test_conv2d_function_gradcheck(x_shape, w_shape, stride, padding, dilation, groups):
    x, w, b = _leaf(*x_shape), _leaf(*w_shape, seed=1), _leaf(w_shape[0], seed=2)
    assert gradcheck(
        lambda x, w, b: Conv2dFunction.apply(x, w, b, stride, padding, dilation, groups),
        (x, w, b),
    )


def test_conv2d_function_matches_pytorch_autograd():
    x, w, b = _leaf(2, 4, 9, 8), _leaf(6, 2, 3, 3, seed=1), _leaf(6, seed=2)
    args = ((2, 1), 1, (1, 2), 2)
    out = Conv2dFunction.apply(x, w, b, *args)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w, b), grad_out)
    ref = F.conv2d(x, w, b, *args)
    ref_grads = torch.autograd.grad(ref, (x, w, b), grad_out)
    assert_rel_close(out, ref, 1e-10, "output")
    for got, expected, name in zip(grads, ref_grads, ("x", "w", "b"), strict=True):
        assert_rel_close(got, expected, 1e-10, f"grad_{name}")


def test_conv2d_function_uses_the_hand_written_backward(monkeypatch):
    calls = []
    import finetune_kit.scratch.functions as functions

    original = functions.conv2d_backward

    def spy(*args, **kwargs):
        calls.append(kwargs["needs_grad"])
        return original(*args, **kwargs)

    monkeypatch.setattr(functions, "conv2d_backward", spy)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)  # no gradient wanted for x
    w = _leaf(3, 2, 3, 3)
    Conv2dFunction.apply(x, w, None, 1, 0, 1, 1).sum().backward()
    assert calls == [(False, True, False)]
    assert x.grad is None and w.grad is not None


def test_relu_function_gradcheck_and_inplace():
    x = _leaf(3, 4)
    x.data[x.data.abs() < 0.1] = 0.5  # keep away from the kink at 0
    assert gradcheck(lambda x: ReLUFunction.apply(x, False), (x,))
    y = x * 1.0  # a non-leaf that can be overwritten
    out = ReLUFunction.apply(y, True)
    assert out.data_ptr() == y.data_ptr()
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, (x > 0).double())


def test_linear_function_gradcheck():
    x, w, b = _leaf(2, 3, 5), _leaf(4, 5, seed=1), _leaf(4, seed=2)
    assert gradcheck(LinearFunction.apply, (x, w, b))
    assert gradcheck(lambda x, w: LinearFunction.apply(x, w, None), (x, w))


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    [(2, None, 0, 1, False), (3, 2, 1, 1, True), ((2, 3), (1, 2), (1, 0), (2, 1), False)],
)
def test_max_pool_function_gradcheck(kernel, stride, padding, dilation, ceil_mode):
    x = _leaf(2, 2, 7, 6)  # random values: no ties, so the max is differentiable

    def pool(x):
        return MaxPool2dFunction.apply(x, kernel, stride, padding, dilation, ceil_mode)[0]

    assert gradcheck(pool, (x,))


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor"),
    [
        (2, None, 0, False, True, None),
        (3, 2, 1, True, False, None),
        ((3, 2), 1, (1, 1), False, True, 5),
    ],
)
def test_avg_pool_function_gradcheck(kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    x = _leaf(2, 2, 7, 6)

    def pool(x):
        return AvgPool2dFunction.apply(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)

    assert gradcheck(pool, (x,))
