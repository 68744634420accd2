"""A 2-D convolution written as explicit loops that read like the formula.

For a grouped convolution with ``G`` groups, ``Cg = C / G`` input and ``Og = O / G`` output
channels per group, output channel ``o`` belongs to group ``g = o // Og`` and sees only the input
channels ``g*Cg ... (g+1)*Cg - 1``::

    y[n, o, oh, ow] = b[o] + sum_{c < Cg, i < kh, j < kw}
                             w[o, c, i, j] * xp[n, g*Cg + c, oh*sh + i*dh, ow*sw + j*dw]

where ``xp`` is the zero-padded input. (Deep-learning "convolution" is a cross-correlation: the
kernel is not flipped.) The loops below run over every output pixel; the sum over ``(c, i, j)``
is the elementwise product of one window with one kernel, summed. This is slow — one Python
iteration per output value — and meant for small inputs, teaching, and as a reference.

Example:
    >>> import torch
    >>> x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> w = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> conv2d_naive(x, w)
    tensor([[[[37., 47.],
              [67., 77.]]]])
"""

from __future__ import annotations

from torch import Tensor

from finetune_kit.scratch._args import IntPair, PaddingArg, check_bias, conv_geometry
from finetune_kit.scratch._windows import pad2d

__all__ = ["conv2d_naive"]


def conv2d_naive(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: PaddingArg = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) with one loop iteration per output value.

    Args:
        x: ``(N, C, H, W)``.
        weight: ``(O, C // groups, kh, kw)``.
        bias: ``(O,)`` or ``None``.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: int or ``(dh, dw)``.
        groups: number of groups, dividing ``C`` and ``O``.

    Returns:
        ``(N, O, H_out, W_out)`` with ``H_out = floor((H + 2p - d(k-1) - 1) / s) + 1``.

    Raises:
        ShapeError: shapes that do not fit together (see :func:`conv_geometry`).
        ConfigError: invalid stride, padding, dilation or groups.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 2, 4, 4)
        >>> conv2d_naive(x, torch.ones(3, 2, 3, 3), padding=1).shape
        torch.Size([1, 3, 4, 4])
    """
    geo = conv_geometry(
        x.shape, weight.shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    check_bias(bias, geo.out_channels)
    xp = pad2d(x, geo.padding)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    h_out, w_out = geo.out_size
    in_per_group = weight.shape[1]
    out_per_group = geo.out_channels // groups
    out = x.new_zeros((x.shape[0], geo.out_channels, h_out, w_out))
    for n in range(x.shape[0]):
        for o in range(geo.out_channels):
            g = o // out_per_group  # the group this output channel belongs to
            channels = slice(g * in_per_group, (g + 1) * in_per_group)
            for oh in range(h_out):
                for ow in range(w_out):
                    # The window: rows oh*sh + i*dh and columns ow*sw + j*dw of the padded input.
                    rows = slice(oh * sh, oh * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(ow * sw, ow * sw + dw * (kw - 1) + 1, dw)
                    window = xp[n, channels, rows, cols]  # (Cg, kh, kw)
                    out[n, o, oh, ow] = (window * weight[o]).sum()
            if bias is not None:
                out[n, o] += bias[o]
    return out
