"""The backward pass of a 2-D convolution, written by hand (no autograd).

Given ``g = dL/dy`` of shape ``(N, O, H_out, W_out)``, the chain rule applied to
``y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j] * xp[n, g*Cg + c, oh*s + i*d, ow*s + j*d]``
gives three sums, one per thing the output depends on:

* ``dL/db[o] = sum_{n, oh, ow} g[n, o, oh, ow]``;
* ``dL/dw[o, c, i, j] = sum_{n, oh, ow} g[n, o, oh, ow] * xp[n, c', oh*s + i*d, ow*s + j*d]``:
  a *correlation of the input with* ``g`` (``g`` plays the kernel, dilated by the stride);
* ``dL/dxp[n, c', h, w] = sum_{o, i, j} g[n, o, oh, ow] * w[o, c, i, j]`` over the taps with
  ``h = oh*s + i*d`` and ``w = ow*s + j*d``:
  every output pixel sends ``g`` times the kernel back onto the window it read. Summed over
  the output, that is a *full convolution of* ``g`` *with the flipped kernels* (``g`` first
  spread out by the stride), then the padding is cut off.

Three implementations of the same sums live here: :func:`conv2d_backward_naive` (loops, one
iteration per output value), :func:`conv2d_backward` (im2col/col2im and matrix products, used by
:class:`~finetune_kit.scratch.Conv2dFunction`), and :func:`conv2d_input_grad` /
:func:`conv2d_weight_grad`, which compute the two gradients literally as the convolutions named
above, with the forward :func:`~finetune_kit.scratch.conv2d`.

Example:
    >>> import torch
    >>> x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> w = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> gx, gw, gb = conv2d_backward(torch.ones(1, 1, 2, 2), x, w)
    >>> gw[0, 0], gb
    (tensor([[12., 16.],
            [24., 28.]]), tensor([4.]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from finetune_kit.errors import ShapeError
from finetune_kit.scratch._args import ConvGeometry, IntPair, PaddingArg, conv_geometry
from finetune_kit.scratch._windows import pad2d, unpad2d
from finetune_kit.scratch.conv_im2col import col2im_geometry, conv2d, im2col_geometry

__all__ = [
    "conv2d_backward",
    "conv2d_backward_naive",
    "conv2d_input_grad",
    "conv2d_weight_grad",
]

Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


def conv2d_backward(
    grad_out: Tensor,
    x: Tensor,
    weight: Tensor,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    needs_grad: tuple[bool, bool, bool] = (True, True, True),
) -> Grads:
    """Gradients of a convolution by im2col, matrix products and col2im.

    With ``cols = im2col(x)`` viewed as ``(G, Cg*kh*kw, N*L)``, ``W`` as ``(G, Og, Cg*kh*kw)``
    and ``g`` as ``(G, Og, N*L)`` (columns ``(n, oh, ow)`` like ``cols``), the forward was
    ``y = W @ cols``, so ``dL/dW = g @ cols^T`` (the correlation, summed over all output pixels
    by the product) and ``dL/dcols = W^T @ g``, which col2im adds back into the input pixels.

    Args:
        grad_out: ``(N, O, H_out, W_out)``, the gradient of the loss with respect to the output.
        x: ``(N, C, H, W)``, the forward input.
        weight: ``(O, C // groups, kh, kw)``.
        stride: as in the forward call.
        padding: as in the forward call.
        dilation: as in the forward call.
        groups: as in the forward call.
        needs_grad: which of ``(grad_x, grad_weight, grad_bias)`` to compute; the others are
            returned as ``None``.

    Returns:
        ``(grad_x (N, C, H, W), grad_weight (O, C // groups, kh, kw), grad_bias (O,))``.

    Raises:
        ShapeError: ``grad_out`` does not have the forward output's shape, or ``x`` and
            ``weight`` do not fit.
        ConfigError: invalid stride, padding, dilation or groups.
    """
    geo = _checked_geometry(grad_out, x.shape, weight.shape, stride, padding, dilation, groups)
    n_cols = grad_out.shape[0] * geo.out_size[0] * geo.out_size[1]
    # g: rows are output channels o, columns the output pixels (n, oh, ow), as in im2col.
    g = grad_out.transpose(0, 1).reshape(groups, -1, n_cols)  # (G, Og, N*L)
    grad_x = grad_w = grad_b = None
    if needs_grad[1]:
        cols = im2col_geometry(x, geo).view(groups, -1, n_cols)  # (G, Cg*kh*kw, N*L)
        grad_w = torch.matmul(g, cols.transpose(1, 2)).view(weight.shape)
    if needs_grad[0]:
        w = weight.reshape(groups, geo.out_channels // groups, -1)  # (G, Og, Cg*kh*kw)
        grad_cols = torch.matmul(w.transpose(1, 2), g)  # (G, Cg*kh*kw, N*L)
        grad_x = col2im_geometry(grad_cols.view(-1, n_cols), x.shape, geo)
    if needs_grad[2]:
        grad_b = grad_out.sum(dim=(0, 2, 3))
    return grad_x, grad_w, grad_b


def conv2d_backward_naive(
    grad_out: Tensor,
    x: Tensor,
    weight: Tensor,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of a convolution with one loop iteration per output value.

    The loop retraces the forward loop of :func:`conv2d_naive`. Output pixel ``(n, o, oh, ow)``
    read one window of the input and multiplied it by kernel ``o``; so its gradient ``g`` adds
    ``g * window`` to the kernel's gradient and ``g * kernel`` to the window's gradient.

    Args:
        grad_out: ``(N, O, H_out, W_out)``.
        x: ``(N, C, H, W)``, the forward input.
        weight: ``(O, C // groups, kh, kw)``.
        stride: as in the forward call.
        padding: as in the forward call.
        dilation: as in the forward call.
        groups: as in the forward call.

    Returns:
        ``(grad_x (N, C, H, W), grad_weight (O, C // groups, kh, kw), grad_bias (O,))``.

    Raises:
        ShapeError: ``grad_out`` does not have the forward output's shape.
        ConfigError: invalid stride, padding, dilation or groups.
    """
    geo = _checked_geometry(grad_out, x.shape, weight.shape, stride, padding, dilation, groups)
    xp = pad2d(x, geo.padding)
    grad_xp = torch.zeros_like(xp)
    grad_w = torch.zeros_like(weight)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    in_per_group, out_per_group = weight.shape[1], geo.out_channels // groups
    for n in range(x.shape[0]):
        for o in range(geo.out_channels):
            gi = o // out_per_group
            channels = slice(gi * in_per_group, (gi + 1) * in_per_group)
            for oh in range(geo.out_size[0]):
                for ow in range(geo.out_size[1]):
                    rows = slice(oh * sh, oh * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(ow * sw, ow * sw + dw * (kw - 1) + 1, dw)
                    g = grad_out[n, o, oh, ow]
                    grad_w[o] += g * xp[n, channels, rows, cols]  # dy/dw = the window
                    grad_xp[n, channels, rows, cols] += g * weight[o]  # dy/dwindow = the kernel
    grad_b = grad_out.sum(dim=(0, 2, 3))
    return unpad2d(grad_xp, geo.padding, geo.in_size), grad_w, grad_b


def conv2d_input_grad(
    input_shape: Sequence[int],
    weight: Tensor,
    grad_out: Tensor,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """``dL/dx`` as a full convolution of ``grad_out`` with the flipped kernels.

    Steps: spread ``g`` out by the stride (``s - 1`` zeros between its pixels), pad it by the
    dilated kernel span minus one on each side ("full"), and convolve it with every kernel
    flipped upside down and left to right, with input and output channels swapped (per group)
    and the forward dilation. That yields the gradient of every padded-input pixel that some
    window read; rows and columns no window reached get zero, and the padding is cut off.

    Args:
        input_shape: ``(N, C, H, W)`` of the forward input.
        weight: ``(O, C // groups, kh, kw)``.
        grad_out: ``(N, O, H_out, W_out)``.
        stride: as in the forward call.
        padding: as in the forward call.
        dilation: as in the forward call.
        groups: as in the forward call.

    Returns:
        ``(N, C, H, W)``, the same as ``conv2d_backward(...)[0]``.

    Raises:
        ShapeError: ``grad_out`` does not have the forward output's shape.
        ConfigError: invalid stride, padding, dilation or groups.
    """
    geo = _checked_geometry(grad_out, input_shape, weight.shape, stride, padding, dilation, groups)
    (sh, sw), (dh, dw), (kh, kw) = geo.stride, geo.dilation, geo.kernel
    n, o, h_out, w_out = grad_out.shape
    spread = grad_out.new_zeros((n, o, (h_out - 1) * sh + 1, (w_out - 1) * sw + 1))
    spread[:, :, ::sh, ::sw] = grad_out
    # (O, Cg, kh, kw) -> per group (Cg, Og, kh, kw), flipped in both spatial dimensions.
    flipped = weight.reshape(groups, o // groups, *weight.shape[1:]).transpose(1, 2)
    flipped = flipped.flip(-1, -2).reshape(-1, o // groups, kh, kw)
    full = conv2d(spread, flipped, padding=(dh * (kh - 1), dw * (kw - 1)), dilation=(dh, dw), groups=groups)
    grad_xp = full.new_zeros((n, geo.in_channels, *geo.padded_size))
    grad_xp[:, :, : full.shape[2], : full.shape[3]] = full
    return unpad2d(grad_xp, geo.padding, geo.in_size)


def conv2d_weight_grad(
    x: Tensor,
    weight_shape: Sequence[int],
    grad_out: Tensor,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """``dL/dw`` as a correlation of the input with ``grad_out``.

    ``dL/dw[o, c, i, j] = sum_{n, oh, ow} xp[n, c, i*d + oh*s, j*d + ow*s] * g[n, o, oh, ow]``
    is a convolution in which the padded input plays the image, ``g`` plays the kernel and the
    batch plays the channels: swap ``N`` and ``C`` in both, and convolve with stride ``d`` and
    dilation ``s`` (the roles of stride and dilation swap too), one group at a time.

    Args:
        x: ``(N, C, H, W)``, the forward input.
        weight_shape: ``(O, C // groups, kh, kw)``.
        grad_out: ``(N, O, H_out, W_out)``.
        stride: as in the forward call.
        padding: as in the forward call.
        dilation: as in the forward call.
        groups: as in the forward call.

    Returns:
        ``(O, C // groups, kh, kw)``, the same as ``conv2d_backward(...)[1]``.

    Raises:
        ShapeError: ``grad_out`` does not have the forward output's shape.
        ConfigError: invalid stride, padding, dilation or groups.
    """
    geo = _checked_geometry(grad_out, x.shape, weight_shape, stride, padding, dilation, groups)
    xp = pad2d(x, geo.padding)
    (kh, kw), in_per_group = geo.kernel, weight_shape[1]
    out_per_group = geo.out_channels // groups
    blocks = []
    for g in range(groups):
        image = xp[:, g * in_per_group : (g + 1) * in_per_group].transpose(0, 1)  # (Cg, N, ...)
        kernel = grad_out[:, g * out_per_group : (g + 1) * out_per_group].transpose(0, 1)
        corr = conv2d(image, kernel, stride=geo.dilation, dilation=geo.stride)  # (Cg, Og, ...)
        blocks.append(corr[:, :, :kh, :kw].transpose(0, 1))  # taps beyond the kernel: unused
    return torch.cat(blocks, dim=0)


def _checked_geometry(
    grad_out: Tensor,
    x_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntPair,
    padding: PaddingArg,
    dilation: IntPair,
    groups: int,
) -> ConvGeometry:
    geo = conv_geometry(
        x_shape, weight_shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    expected = (x_shape[0], geo.out_channels, *geo.out_size)
    if tuple(grad_out.shape) != expected:
        raise ShapeError(
            f"grad_out must have the forward output's shape {expected} "
            f"(x {tuple(x_shape)}, weight {tuple(weight_shape)}), got {tuple(grad_out.shape)}"
        )
    return geo
