"""Windows of a padded image: the shared machinery of im2col, col2im and pooling.

A sliding-window layer reads, for every output pixel ``(oh, ow)`` and every kernel tap
``(i, j)``, the input pixel ``xp[oh*s + i*d, ow*s + j*d]`` of the padded image ``xp``.
:func:`sliding_windows` exposes all of those reads at once as a strided *view* (no copy), and
:func:`add_windows` is its adjoint: it sums values laid out like the windows back into the
pixels they were read from (this is col2im, and the backward of every window read).

Example:
    >>> import torch
    >>> xp = torch.arange(9.0).reshape(1, 1, 3, 3)
    >>> w = sliding_windows(xp, kernel=(2, 2), stride=(1, 1), dilation=(1, 1), out_size=(2, 2))
    >>> w.shape  # (N, C, kh, kw, H_out, W_out)
    torch.Size([1, 1, 2, 2, 2, 2])
    >>> w[0, 0, :, :, 1, 1]  # the window of output pixel (1, 1)
    tensor([[4., 5.],
            [7., 8.]])
    >>> add_windows(torch.ones_like(w), (3, 3), stride=(1, 1), dilation=(1, 1))[0, 0]
    tensor([[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]])
"""

from __future__ import annotations

from torch import Tensor

from finetune_kit.scratch._args import Padding

__all__ = ["add_windows", "pad2d", "sliding_windows", "unpad2d"]


def pad2d(x: Tensor, padding: Padding, value: float = 0.0) -> Tensor:
    """Return a contiguous copy of ``x`` surrounded by ``value`` (zeros for conv, -inf for max).

    Args:
        x: ``(N, C, H, W)``.
        padding: pixels on each side.
        value: the fill value of the border.

    Returns:
        ``(N, C, H + top + bottom, W + left + right)``.
    """
    if padding == (0, 0, 0, 0):
        return x.contiguous()
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    out = x.new_full((n, c, h + top + bottom, w + left + right), value)
    out[:, :, top : top + h, left : left + w] = x
    return out


def unpad2d(xp: Tensor, padding: Padding, size: tuple[int, int]) -> Tensor:
    """Cut the border added by :func:`pad2d` off again (a view).

    Args:
        xp: ``(N, C, Hp, Wp)``.
        padding: the padding that was added.
        size: ``(H, W)`` of the unpadded image.

    Returns:
        ``(N, C, H, W)``.
    """
    top, _, left, _ = padding
    return xp[:, :, top : top + size[0], left : left + size[1]]


def sliding_windows(
    xp: Tensor,
    *,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
) -> Tensor:
    """All windows of a padded image as a strided view, without copying.

    ``windows[n, c, i, j, oh, ow] == xp[n, c, oh*sh + i*dh, ow*sw + j*dw]``. Moving one step in
    ``i`` moves ``dh`` rows in memory, one step in ``oh`` moves ``sh`` rows: that is all
    ``as_strided`` needs to know.

    Args:
        xp: ``(N, C, Hp, Wp)``, already padded.
        kernel: ``(kh, kw)``.
        stride: ``(sh, sw)``.
        dilation: ``(dh, dw)``.
        out_size: ``(H_out, W_out)``; every window must fit inside ``xp``.

    Returns:
        A view ``(N, C, kh, kw, H_out, W_out)`` of ``xp`` (made contiguous first if needed).
    """
    xp = xp.contiguous()
    n, c, _, _ = xp.shape
    stride_n, stride_c, stride_h, stride_w = xp.stride()
    (kh, kw), (sh, sw), (dh, dw), (h_out, w_out) = kernel, stride, dilation, out_size
    return xp.as_strided(
        (n, c, kh, kw, h_out, w_out),
        (stride_n, stride_c, dh * stride_h, dw * stride_w, sh * stride_h, sw * stride_w),
        xp.storage_offset(),
    )


def add_windows(
    windows: Tensor,
    padded_size: tuple[int, int],
    *,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Tensor:
    """The adjoint of :func:`sliding_windows` (col2im): sum every window entry into its pixel.

    A pixel read by several overlapping windows receives the sum of their entries. The loop runs
    over the ``kh * kw`` kernel taps; each tap ``(i, j)`` touches a strided grid of pixels
    (rows ``i*dh, i*dh + sh, ...``) that is updated in one vectorised add.

    Args:
        windows: ``(N, C, kh, kw, H_out, W_out)``, any strides.
        padded_size: ``(Hp, Wp)`` of the padded image the windows were read from.
        stride: ``(sh, sw)``.
        dilation: ``(dh, dw)``.

    Returns:
        ``(N, C, Hp, Wp)``.
    """
    n, c, kh, kw, h_out, w_out = windows.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = windows.new_zeros((n, c, *padded_size))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (h_out - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (w_out - 1) + 1, sw)
            out[:, :, rows, cols] += windows[:, :, i, j]
    return out
