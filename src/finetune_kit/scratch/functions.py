"""Autograd Functions that plug the hand-written forward and backward passes into PyTorch.

A :class:`torch.autograd.Function` tells autograd "here is the output, and here is how to turn
the gradient of the output into gradients of the inputs". Autograd records nothing inside
``forward``; in ``backward`` it calls our hand-written gradient code. ``ctx.needs_input_grad``
says which inputs want a gradient, so work for the others is skipped.

Example:
    >>> import torch
    >>> x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    >>> w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    >>> y = Conv2dFunction.apply(x, w, None, 1, 1, 1, 1)
    >>> y.sum().backward()  # runs conv2d_backward, not autograd's own convolution backward
    >>> ref = torch.nn.grad.conv2d_weight(x, w.shape, torch.ones_like(y), padding=1)
    >>> torch.allclose(w.grad, ref)
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from finetune_kit.scratch._args import IntPair, PaddingArg
from finetune_kit.scratch.conv_backward import conv2d_backward
from finetune_kit.scratch.conv_im2col import conv2d
from finetune_kit.scratch.layers import (
    avg_pool2d,
    avg_pool2d_backward,
    linear,
    linear_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)

__all__ = [
    "AvgPool2dFunction",
    "Conv2dFunction",
    "LinearFunction",
    "MaxPool2dFunction",
    "ReLUFunction",
]


class Conv2dFunction(torch.autograd.Function):
    """Convolution with :func:`conv2d` (im2col) forward and :func:`conv2d_backward`.

    Call as ``Conv2dFunction.apply(x, weight, bias, stride, padding, dilation, groups)``, all
    arguments positional (``bias`` may be ``None``). Shapes: ``x (N, C, H, W)``,
    ``weight (O, C // groups, kh, kw)``, ``bias (O,)``; returns ``(N, O, H_out, W_out)``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: IntPair,
        padding: PaddingArg,
        dilation: IntPair,
        groups: int,
    ) -> Tensor:
        """Compute the convolution and keep ``x`` and ``weight`` for the backward pass."""
        ctx.save_for_backward(x, weight)
        ctx.conv_args = (stride, padding, dilation, groups)
        return conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """Return ``(grad_x, grad_weight, grad_bias)`` and ``None`` for the int arguments."""
        x, weight = ctx.saved_tensors
        grads = conv2d_backward(
            grad_out, x, weight, *ctx.conv_args, needs_grad=tuple(ctx.needs_input_grad[:3])
        )
        return (*grads, None, None, None, None)


class ReLUFunction(torch.autograd.Function):
    """ReLU with :func:`relu` and :func:`relu_backward`: ``apply(x, inplace)``.

    With ``inplace=True`` the input tensor is overwritten (and marked dirty for autograd), as
    ``nn.ReLU(inplace=True)`` does; the backward only needs the output.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, inplace: bool) -> Tensor:
        """Zero the negative entries, in place or in a new tensor."""
        if inplace:
            ctx.mark_dirty(x)
            out = x.masked_fill_(x < 0, 0.0)
        else:
            out = relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        """Pass the gradient where the output is positive."""
        (out,) = ctx.saved_tensors
        return relu_backward(grad_out, out), None


class LinearFunction(torch.autograd.Function):
    """``x @ W^T + b`` with :func:`linear` and :func:`linear_backward`: ``apply(x, w, b)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """Compute the affine map and keep ``x`` and ``weight``."""
        ctx.save_for_backward(x, weight)
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """Return ``(grad_x, grad_weight, grad_bias)``, ``None`` where not needed."""
        x, weight = ctx.saved_tensors
        grads = linear_backward(grad_out, x, weight)
        needs = ctx.needs_input_grad
        return tuple(g if need else None for g, need in zip(grads, needs, strict=True))


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling: ``apply(x, kernel_size, stride, padding, dilation, ceil_mode)``.

    Returns ``(out, indices)``; the indices are not differentiable.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        kernel_size: IntPair,
        stride: IntPair | None,
        padding: IntPair,
        dilation: IntPair,
        ceil_mode: bool,
    ) -> tuple[Tensor, Tensor]:
        """Pool, and keep the indices of the maxima for the backward pass."""
        out, indices = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        ctx.input_shape = x.shape
        return out, indices

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, _grad_indices: Tensor | None) -> tuple[Any, ...]:
        """Send each output's gradient to the input that won its window."""
        (indices,) = ctx.saved_tensors
        return max_pool2d_backward(grad_out, indices, ctx.input_shape), *([None] * 5)


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling: ``apply(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override)``, all positional."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        kernel_size: IntPair,
        stride: IntPair | None,
        padding: IntPair,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: int | None,
    ) -> Tensor:
        """Pool, and keep the input's shape and the pooling arguments."""
        ctx.input_shape = x.shape
        ctx.pool_args = (
            kernel_size,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
            divisor_override,
        )
        return avg_pool2d(x, *ctx.pool_args)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Any, ...]:
        """Spread each output's gradient evenly over its window."""
        grad_x = avg_pool2d_backward(grad_out, ctx.input_shape, *ctx.pool_args)
        return grad_x, *([None] * 6)
