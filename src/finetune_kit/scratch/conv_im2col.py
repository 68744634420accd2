"""The vectorised convolution: im2col, then one matrix product per group.

im2col ("image to columns") copies every window of the padded input into one column of a
matrix. With rows indexed by the kernel tap ``(c, i, j)`` and columns by the output pixel
``(n, oh, ow)``::

    cols[(c, i, j), (n, oh, ow)] = xp[n, c, oh*sh + i*dh, ow*sw + j*dw]

the convolution becomes a matrix product, ``y = W @ cols`` with ``W`` reshaped to
``(O, C*kh*kw)``: row ``o`` of ``W`` dotted with column ``(n, oh, ow)`` of ``cols`` is exactly
the sum in the naive formula. For ``G`` groups the rows of ``cols`` split into ``G`` blocks (the
channel ``c`` varies slowest) and each group is its own product: one batched ``matmul``.

col2im is the adjoint of im2col: it adds every entry of a column matrix back into the pixel it
was read from (overlapping windows add up). It is what the backward pass needs.

Example:
    >>> import torch
    >>> x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> im2col(x, 2)  # four windows of 2x2, one per column
    tensor([[1., 2., 4., 5.],
            [2., 3., 5., 6.],
            [4., 5., 7., 8.],
            [5., 6., 8., 9.]])
    >>> conv2d(x, torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    tensor([[[[37., 47.],
              [67., 77.]]]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from finetune_kit.errors import ShapeError
from finetune_kit.scratch._args import (
    IntPair,
    PaddingArg,
    WindowGeometry,
    check_bias,
    conv_geometry,
    to_pair,
)
from finetune_kit.scratch._windows import add_windows, pad2d, sliding_windows, unpad2d

__all__ = ["col2im", "conv2d", "im2col"]


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) as im2col plus one matrix product per group.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(O, C // groups, kh, kw)``.
        bias: ``(O,)`` or ``None``.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: int or ``(dh, dw)``.
        groups: number of groups, dividing ``C`` and ``O``.

    Returns:
        ``(N, O, H_out, W_out)``, the same values as :func:`torch.nn.functional.conv2d`.

    Raises:
        ShapeError: shapes that do not fit together.
        ConfigError: invalid stride, padding, dilation or groups.

    Example:
        >>> import torch
        >>> x, w = torch.ones(2, 4, 5, 7), torch.ones(6, 2, 3, 3)
        >>> conv2d(x, w, stride=2, padding=1, groups=2).shape
        torch.Size([2, 6, 3, 4])
    """
    geo = conv_geometry(
        x.shape, weight.shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    check_bias(bias, geo.out_channels)
    n = x.shape[0]
    h_out, w_out = geo.out_size
    cols = im2col_geometry(x, geo).view(groups, -1, n * h_out * w_out)  # (G, Cg*kh*kw, N*L)
    w = weight.reshape(groups, geo.out_channels // groups, -1)  # (G, Og, Cg*kh*kw)
    if bias is None:  # noqa: SIM108 - two commented branches read better than a ternary
        out = torch.matmul(w, cols)  # (G, Og, N*L): one product per group
    else:  # the same product, with b[o] added to row o inside the same call
        out = torch.baddbmm(bias.view(groups, -1, 1), w, cols)
    # Rows are output channels, columns (n, oh, ow): reorder to (N, O, H_out, W_out).
    return out.view(geo.out_channels, n, h_out, w_out).transpose(0, 1).contiguous()


def im2col(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """Copy every window of the padded input into one column of a matrix.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size: int or ``(kh, kw)``.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` or ``"valid"``.
        dilation: int or ``(dh, dw)``.

    Returns:
        ``(C*kh*kw, N*H_out*W_out)``: row ``(c, i, j)``, column ``(n, oh, ow)`` (row-major).

    Raises:
        ShapeError: ``x`` is not 4-D, or the window does not fit.
        ConfigError: invalid kernel, stride, padding or dilation.
    """
    return im2col_geometry(x, _geometry(x.shape, kernel_size, stride, padding, dilation))


def col2im(
    cols: Tensor,
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """Add the entries of a column matrix back into the pixels they were read from.

    The adjoint of :func:`im2col`: for any ``x`` and ``cols`` of matching shapes,
    ``(im2col(x) * cols).sum() == (x * col2im(cols)).sum()``.

    Args:
        cols: ``(C*kh*kw, N*H_out*W_out)``, laid out as :func:`im2col` returns.
        input_shape: ``(N, C, H, W)`` of the image.
        kernel_size: int or ``(kh, kw)``.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` or ``"valid"``.
        dilation: int or ``(dh, dw)``.

    Returns:
        ``(N, C, H, W)``.

    Raises:
        ShapeError: ``cols`` does not have the shape these arguments produce.
        ConfigError: invalid kernel, stride, padding or dilation.
    """
    return col2im_geometry(cols, input_shape, _geometry(input_shape, kernel_size, stride, padding, dilation))


def im2col_geometry(x: Tensor, geo: WindowGeometry) -> Tensor:
    """:func:`im2col` for an already checked geometry (used by conv2d and its backward)."""
    xp = pad2d(x, geo.padding)
    windows = sliding_windows(
        xp, kernel=geo.kernel, stride=geo.stride, dilation=geo.dilation, out_size=geo.out_size
    )  # view (N, C, kh, kw, H_out, W_out)
    n, c, kh, kw, h_out, w_out = windows.shape
    # Reorder to (C, kh, kw, N, H_out, W_out); reshape copies: this is the im2col copy.
    return windows.permute(1, 2, 3, 0, 4, 5).reshape(c * kh * kw, n * h_out * w_out)


def col2im_geometry(cols: Tensor, input_shape: Sequence[int], geo: WindowGeometry) -> Tensor:
    """:func:`col2im` for an already checked geometry (used by the backward pass)."""
    n, c = input_shape[0], input_shape[1]
    (kh, kw), (h_out, w_out) = geo.kernel, geo.out_size
    expected = (c * kh * kw, n * h_out * w_out)
    if tuple(cols.shape) != expected:
        raise ShapeError(
            f"cols must have shape {expected} for input shape {tuple(input_shape)}, got {tuple(cols.shape)}"
        )
    windows = cols.view(c, kh, kw, n, h_out, w_out).permute(3, 0, 1, 2, 4, 5)
    grad_xp = add_windows(windows, geo.padded_size, stride=geo.stride, dilation=geo.dilation)
    return unpad2d(grad_xp, geo.padding, geo.in_size)


def _geometry(
    shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair,
    padding: PaddingArg,
    dilation: IntPair,
) -> WindowGeometry:
    shape = tuple(shape)
    if len(shape) != 4:
        raise ShapeError(f"x must be (N, C, H, W), got shape {shape}")
    kernel = to_pair(kernel_size, "kernel_size", minimum=1)
    weight_shape = (shape[1], 1, *kernel)  # a depthwise kernel: checks only the window
    return conv_geometry(
        shape, weight_shape, stride=stride, padding=padding, dilation=dilation, groups=shape[1]
    )
