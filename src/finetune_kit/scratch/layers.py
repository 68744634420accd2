"""The other layers of a basic CNN, forward and hand-written backward: pooling, ReLU, linear.

Each layer is a pair of plain functions: ``layer(x, ...)`` and ``layer_backward(grad_out, ...)``,
which returns the gradient of the loss with respect to the layer's inputs given the gradient
with respect to its output. Pooling slides a window exactly like the convolution (same output
size formula, same :func:`sliding_windows` view); only the reduction differs.

Example:
    >>> import torch
    >>> x = torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]])
    >>> out, idx = max_pool2d(x, 2, return_indices=True)
    >>> out.flatten().tolist(), idx.flatten().tolist()  # 5 sits at flat position 0*2 + 1
    ([5.0], [1])
    >>> max_pool2d_backward(torch.ones_like(out), idx, x.shape)
    tensor([[[[0., 1.],
              [0., 0.]]]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from finetune_kit.errors import ShapeError
from finetune_kit.scratch._args import IntPair, WindowGeometry, pool_geometry
from finetune_kit.scratch._windows import add_windows, pad2d, sliding_windows, unpad2d

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
]


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``, elementwise (NaN stays NaN, as in PyTorch).

    Args:
        x: any shape.

    Returns:
        The same shape as ``x``.

    Example:
        >>> import torch
        >>> relu(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """
    return x.masked_fill(x < 0, 0.0)


def relu_backward(grad_out: Tensor, out: Tensor) -> Tensor:
    """Gradient of :func:`relu`: ``grad_out`` where the output is positive, zero elsewhere.

    ``relu(x) > 0`` exactly where ``x > 0``, so the saved output is enough (this lets an
    in-place ReLU overwrite its input). At ``x == 0`` the gradient is taken as 0, like PyTorch.

    Args:
        grad_out: the gradient with respect to the output, same shape as ``out``.
        out: the forward output ``relu(x)``.

    Returns:
        The gradient with respect to ``x``.
    """
    return grad_out.masked_fill(out <= 0, 0.0)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y = x @ W^T + b`` over the last dimension of ``x``.

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)``.
        bias: ``(out_features,)`` or ``None``.

    Returns:
        ``(..., out_features)``.

    Raises:
        ShapeError: if ``x.shape[-1]`` does not match ``weight.shape[1]``.

    Example:
        >>> import torch
        >>> linear(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([0.5]))
        tensor([[11.5000]])
    """
    _check_linear(x, weight, bias)
    out = torch.matmul(x, weight.t())
    return out if bias is None else out + bias


def linear_backward(grad_out: Tensor, x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`linear`.

    With every leading dimension flattened into rows: ``dL/dx = g @ W``, ``dL/dW = g^T @ x``
    (summed over rows by the product), ``dL/db = sum of g over rows``.

    Args:
        grad_out: ``(..., out_features)``.
        x: ``(..., in_features)``, the forward input.
        weight: ``(out_features, in_features)``.

    Returns:
        ``(grad_x (..., in_features), grad_weight (out, in), grad_bias (out,))``.
    """
    g = grad_out.reshape(-1, weight.shape[0])
    rows = x.reshape(-1, weight.shape[1])
    return torch.matmul(grad_out, weight), torch.matmul(g.t(), rows), g.sum(dim=0)


def max_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Maximum over each window, with the position of the maximum if asked for.

    The padding is ``-inf``, so it never wins. Ties go to the first maximum in row-major order
    within the window, like PyTorch's kernels.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair; ``None`` means ``kernel_size``.
        padding: int or pair, at most half the kernel.
        dilation: int or pair.
        ceil_mode: round the output size up.
        return_indices: also return where each maximum came from.

    Returns:
        ``(N, C, H_out, W_out)``, and with ``return_indices`` also the indices ``(N, C, H_out,
        W_out)`` (int64) of the maxima as flat positions ``h * W + w`` in each input plane.

    Raises:
        ShapeError: ``x`` is not 4-D or the output would be empty.
        ConfigError: invalid kernel, stride, padding or dilation.
    """
    geo = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = pad2d(x, geo.padding, value=float("-inf"))
    windows = sliding_windows(
        xp, kernel=geo.kernel, stride=geo.stride, dilation=geo.dilation, out_size=geo.out_size
    )
    n, c, kh, kw, h_out, w_out = windows.shape
    flat = windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c, h_out, w_out, kh * kw)
    tap = flat.argmax(dim=-1, keepdim=True)  # which of the kh*kw taps holds the maximum
    out = flat.gather(-1, tap).squeeze(-1)
    if not return_indices:
        return out
    return out, _tap_to_input_index(tap.squeeze(-1), geo)


def _tap_to_input_index(tap: Tensor, geo: WindowGeometry) -> Tensor:
    # Tap (i, j) of window (oh, ow) read input pixel (oh*s - p + i*d, ow*s - p + j*d).
    (_, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    h_out, w_out = geo.out_size
    oh = torch.arange(h_out, device=tap.device).view(-1, 1)
    ow = torch.arange(w_out, device=tap.device).view(1, -1)
    rows = oh * sh - geo.padding.top + (tap // kw) * dh
    cols = ow * sw - geo.padding.left + (tap % kw) * dw
    return rows * geo.in_size[1] + cols


def max_pool2d_backward(grad_out: Tensor, indices: Tensor, input_shape: Sequence[int]) -> Tensor:
    """Gradient of :func:`max_pool2d`: each output's gradient goes to the input that won.

    An input pixel that wins several overlapping windows collects all of their gradients.

    Args:
        grad_out: ``(N, C, H_out, W_out)``.
        indices: ``(N, C, H_out, W_out)``, as returned with ``return_indices=True``.
        input_shape: ``(N, C, H, W)``.

    Returns:
        ``(N, C, H, W)``.

    Raises:
        ShapeError: ``indices`` and ``grad_out`` differ in shape.
    """
    if grad_out.shape != indices.shape:
        raise ShapeError(f"grad_out {tuple(grad_out.shape)} and indices {tuple(indices.shape)} must match")
    n, c, h, w = input_shape
    grad_x = grad_out.new_zeros((n, c, h * w))
    grad_x.scatter_add_(2, indices.reshape(n, c, -1), grad_out.reshape(n, c, -1))
    return grad_x.view(n, c, h, w)


def avg_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over each window (zero padding), with PyTorch's rules for the divisor.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair; ``None`` means ``kernel_size``.
        padding: int or pair, at most half the kernel.
        ceil_mode: round the output size up.
        count_include_pad: count padded zeros in the divisor (never the part of a ``ceil_mode``
            window that runs past the padding).
        divisor_override: divide every window sum by this instead.

    Returns:
        ``(N, C, H_out, W_out)``.

    Raises:
        ShapeError: ``x`` is not 4-D or the output would be empty.
        ConfigError: invalid kernel, stride or padding.

    Example:
        >>> import torch
        >>> avg_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    geo = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    windows = sliding_windows(
        pad2d(x, geo.padding),
        kernel=geo.kernel,
        stride=geo.stride,
        dilation=(1, 1),
        out_size=geo.out_size,
    )
    return windows.sum(dim=(2, 3)) / _divisor(geo, x, count_include_pad, divisor_override)


def avg_pool2d_backward(
    grad_out: Tensor,
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Gradient of :func:`avg_pool2d`: each window spreads ``grad / divisor`` over its pixels.

    Args:
        grad_out: ``(N, C, H_out, W_out)``.
        input_shape: ``(N, C, H, W)``.
        kernel_size: as in the forward call.
        stride: as in the forward call.
        padding: as in the forward call.
        ceil_mode: as in the forward call.
        count_include_pad: as in the forward call.
        divisor_override: as in the forward call.

    Returns:
        ``(N, C, H, W)``.

    Raises:
        ShapeError: ``grad_out`` does not have the forward output's shape.
    """
    geo = pool_geometry(
        tuple(input_shape)[2:],
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=1,
        ceil_mode=ceil_mode,
    )
    expected = (*tuple(input_shape)[:2], *geo.out_size)
    if tuple(grad_out.shape) != expected:
        raise ShapeError(f"grad_out must have shape {expected}, got {tuple(grad_out.shape)}")
    share = grad_out / _divisor(geo, grad_out, count_include_pad, divisor_override)
    n, c, h_out, w_out = share.shape
    windows = share.view(n, c, 1, 1, h_out, w_out).expand(n, c, *geo.kernel, h_out, w_out)
    grad_xp = add_windows(windows, geo.padded_size, stride=geo.stride, dilation=(1, 1))
    return unpad2d(grad_xp, geo.padding, geo.in_size)


def _divisor(
    geo: WindowGeometry, like: Tensor, count_include_pad: bool, divisor_override: int | None
) -> Tensor | int:
    """The number each window sum is divided by, per output pixel ``(H_out, W_out)``."""
    if divisor_override is not None:
        return divisor_override
    counts = []
    for size, k, s, p, n in zip(
        geo.in_size, geo.kernel, geo.stride, geo.padding[::2], geo.out_size, strict=True
    ):
        start = torch.arange(n, device=like.device) * s - p
        end = torch.clamp(start + k, max=size + p)  # never past the padding (ceil_mode)
        if not count_include_pad:
            start, end = start.clamp(min=0), end.clamp(max=size)
        counts.append(end - start)
    return (counts[0].view(-1, 1) * counts[1].view(1, -1)).to(like.dtype)


def _pool_geometry(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> WindowGeometry:
    if x.dim() != 4:
        raise ShapeError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    return pool_geometry(
        x.shape[2:],
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


def _check_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    if weight.dim() != 2:
        raise ShapeError(f"weight must be (out_features, in_features), got {tuple(weight.shape)}")
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"x shape {tuple(x.shape)} must end in in_features={weight.shape[1]} "
            f"to match weight shape {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
