"""Arguments of the sliding-window layers, normalised, and the output-size formula.

Every layer in :mod:`finetune_kit.scratch` slides a window over an image. What differs between
them is only how the window is described (kernel, stride, padding, dilation) and what is done with
it. This module turns the many spellings PyTorch accepts (``3``, ``(3, 1)``, ``"same"``,
``"valid"``) into one explicit description, checks it, and computes the output size::

    H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1

Example:
    >>> output_size(32, kernel=3, stride=2, padding=(1, 1), dilation=1)
    16
    >>> conv_padding("same", kernel=(4, 3), stride=(1, 1), dilation=(1, 1))
    Padding(top=1, bottom=2, left=1, right=1)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

from finetune_kit.errors import ConfigError, ShapeError

__all__ = [
    "ConvGeometry",
    "IntPair",
    "Padding",
    "PaddingArg",
    "WindowGeometry",
    "check_bias",
    "conv_geometry",
    "conv_padding",
    "output_size",
    "pool_geometry",
    "to_pair",
]

IntPair = int | tuple[int, int]
"""An int used for both spatial dimensions, or a ``(height, width)`` pair."""

PaddingArg = int | tuple[int, int] | str
"""Padding as PyTorch spells it: an int, a ``(height, width)`` pair, ``"same"`` or ``"valid"``."""


class Padding(NamedTuple):
    """Zeros added on each side of the image, in pixels (``"same"`` may be asymmetric)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class WindowGeometry:
    """Everything needed to slide a window over a ``(H, W)`` image, with sizes already checked.

    Attributes:
        kernel: ``(kh, kw)``, the window size before dilation.
        stride: ``(sh, sw)``, the step between two windows.
        dilation: ``(dh, dw)``, the step between two taps of one window.
        padding: pixels added on each side.
        in_size: ``(H, W)`` of the unpadded image.
        out_size: ``(H_out, W_out)``, the number of window positions.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: Padding
    in_size: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def padded_size(self) -> tuple[int, int]:
        """``(H + top + bottom, W + left + right)``: the size of the zero-padded image."""
        (h, w), p = self.in_size, self.padding
        return h + p.top + p.bottom, w + p.left + p.right


@dataclass(frozen=True)
class ConvGeometry(WindowGeometry):
    """A :class:`WindowGeometry` plus the channel bookkeeping of a grouped convolution.

    Attributes:
        groups: number of groups ``G``; input and output channels are split into ``G`` blocks.
        in_channels: ``C`` of the input.
        out_channels: ``O`` of the output.
    """

    groups: int = 1
    in_channels: int = 1
    out_channels: int = 1


def to_pair(value: IntPair, name: str, *, minimum: int) -> tuple[int, int]:
    """Turn ``3`` or ``(3, 1)`` into a ``(height, width)`` pair of ints ``>= minimum``.

    Args:
        value: an int, or a sequence of two ints.
        name: the argument's name, for the error message.
        minimum: the smallest allowed value.

    Returns:
        ``(height, width)``.

    Raises:
        ConfigError: if ``value`` is not an int or a pair of ints, or is below ``minimum``.

    Example:
        >>> to_pair(3, "kernel_size", minimum=1), to_pair((2, 1), "stride", minimum=1)
        ((3, 3), (2, 1))
    """
    if _is_int(value):
        pair = (int(value), int(value))
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ConfigError(f"{name} must be >= {minimum} in both dimensions, got {value!r}")
    return pair


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def conv_padding(
    padding: PaddingArg,
    *,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Padding:
    """Resolve a convolution's ``padding`` argument into pixels on each side.

    ``"valid"`` means no padding. ``"same"`` pads ``d(k - 1)`` pixels in total per dimension so
    that ``H_out == H``; when that total is odd, the extra pixel goes to the bottom/right, as in
    PyTorch. Like PyTorch, ``"same"`` is only defined for stride 1.

    Args:
        padding: an int, a ``(height, width)`` pair, ``"same"`` or ``"valid"``.
        kernel: ``(kh, kw)``.
        stride: ``(sh, sw)``.
        dilation: ``(dh, dw)``.

    Returns:
        The :class:`Padding` on each side.

    Raises:
        ConfigError: for an unknown string, a negative padding, or ``"same"`` with stride > 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return Padding(0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ConfigError(
                    f"padding='same' needs stride 1 (as in PyTorch), got stride={stride}; "
                    "pass explicit padding for strided convolutions"
                )
            total_h = dilation[0] * (kernel[0] - 1)
            total_w = dilation[1] * (kernel[1] - 1)
            top, left = total_h // 2, total_w // 2
            return Padding(top, total_h - top, left, total_w - left)
        raise ConfigError(f"padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
    ph, pw = to_pair(padding, "padding", minimum=0)
    return Padding(ph, ph, pw, pw)


def output_size(size: int, *, kernel: int, stride: int, padding: tuple[int, int], dilation: int) -> int:
    """Number of window positions along one dimension: ``floor((H + 2p - d(k-1) - 1) / s) + 1``.

    Args:
        size: ``H``, the unpadded input size.
        kernel: ``k``.
        stride: ``s``.
        padding: pixels added ``(before, after)``; ``2p`` in the formula is their sum.
        dilation: ``d``; a dilated window spans ``d(k - 1) + 1`` pixels.

    Returns:
        ``H_out``; zero or negative when the window does not fit even once.

    Example:
        >>> output_size(3, kernel=2, stride=1, padding=(0, 0), dilation=1)
        2
    """
    span = dilation * (kernel - 1) + 1
    return (size + padding[0] + padding[1] - span) // stride + 1


def conv_geometry(
    x_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    stride: IntPair,
    padding: PaddingArg,
    dilation: IntPair,
    groups: int,
) -> ConvGeometry:
    """Check a convolution's shapes and arguments, and describe its sliding window.

    Args:
        x_shape: ``(N, C, H, W)``.
        weight_shape: ``(O, C // groups, kh, kw)``.
        stride: int or pair, ``>= 1``.
        padding: int, pair, ``"same"`` or ``"valid"``.
        dilation: int or pair, ``>= 1``.
        groups: ``>= 1``, dividing both ``C`` and ``O``.

    Returns:
        The checked :class:`ConvGeometry`.

    Raises:
        ShapeError: wrong number of dimensions, channels that do not match or do not divide by
            ``groups``, or an output size below 1.
        ConfigError: an invalid stride, padding, dilation or groups value.
    """
    x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
    if len(x_shape) != 4:
        raise ShapeError(f"x must be (N, C, H, W), got shape {x_shape}")
    if len(weight_shape) != 4:
        raise ShapeError(f"weight must be (O, C // groups, kh, kw), got shape {weight_shape}")
    if not _is_int(groups) or groups < 1:
        raise ConfigError(f"groups must be an int >= 1, got {groups!r}")
    n_in, n_out = x_shape[1], weight_shape[0]
    if n_in % groups or n_out % groups:
        raise ShapeError(
            f"in_channels ({n_in}) and out_channels ({n_out}) must both be divisible by "
            f"groups ({groups}); x shape {x_shape}, weight shape {weight_shape}"
        )
    if weight_shape[1] * groups != n_in:
        raise ShapeError(
            f"weight shape {weight_shape} expects {weight_shape[1] * groups} input channels "
            f"(weight.shape[1] * groups = {weight_shape[1]} * {groups}), "
            f"but x shape {x_shape} has {n_in}"
        )
    window = _window_geometry(
        x_shape[2:], weight_shape[2:], stride=stride, padding=padding, dilation=dilation
    )
    return ConvGeometry(**vars(window), groups=groups, in_channels=n_in, out_channels=n_out)


def check_bias(bias: Tensor | None, out_channels: int) -> None:
    """Raise :class:`ShapeError` unless ``bias`` is ``None`` or has shape ``(out_channels,)``.

    Args:
        bias: a tensor or ``None``.
        out_channels: ``O``.

    Raises:
        ShapeError: if the shape is not ``(O,)``.
    """
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ShapeError(
            f"bias must have shape ({out_channels},) to match out_channels, got {tuple(bias.shape)}"
        )


def _window_geometry(
    in_size: Sequence[int],
    kernel_size: IntPair,
    *,
    stride: IntPair,
    padding: PaddingArg,
    dilation: IntPair,
) -> WindowGeometry:
    kernel = to_pair(kernel_size, "kernel_size", minimum=1)
    stride_ = to_pair(stride, "stride", minimum=1)
    dilation_ = to_pair(dilation, "dilation", minimum=1)
    pad = conv_padding(padding, kernel=kernel, stride=stride_, dilation=dilation_)
    h, w = in_size
    out = (
        output_size(h, kernel=kernel[0], stride=stride_[0], padding=pad[:2], dilation=dilation_[0]),
        output_size(w, kernel=kernel[1], stride=stride_[1], padding=pad[2:], dilation=dilation_[1]),
    )
    if min(out) < 1:
        raise ShapeError(
            f"output size would be {out} for input size {(h, w)}, kernel {kernel}, "
            f"stride {stride_}, padding {tuple(pad)}, dilation {dilation_}: the dilated kernel "
            "must fit inside the padded input; use a larger input or more padding"
        )
    return WindowGeometry(kernel, stride_, dilation_, pad, (h, w), out)


def pool_geometry(
    in_size: Sequence[int],
    kernel_size: IntPair,
    *,
    stride: IntPair | None,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> WindowGeometry:
    """Check a pooling layer's arguments and describe its sliding window, as PyTorch does.

    The output size is the convolution formula, with ``ceil`` instead of ``floor`` when
    ``ceil_mode`` is set; a last window that would start inside the right padding is dropped.
    The returned padding may be larger at the bottom/right than ``padding`` so that every window
    of ``ceil_mode`` fits inside the padded image.

    Args:
        in_size: ``(H, W)``.
        kernel_size: int or pair.
        stride: int or pair; ``None`` means ``kernel_size``.
        padding: int or pair, at most half the kernel size.
        dilation: int or pair.
        ceil_mode: round the output size up instead of down.

    Returns:
        The checked :class:`WindowGeometry`.

    Raises:
        ConfigError: invalid arguments, or padding larger than half the kernel.
        ShapeError: an output size below 1.
    """
    kernel = to_pair(kernel_size, "kernel_size", minimum=1)
    stride_ = kernel if stride is None else to_pair(stride, "stride", minimum=1)
    pad = to_pair(padding, "padding", minimum=0)
    dilation_ = to_pair(dilation, "dilation", minimum=1)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ConfigError(f"padding {pad} must be at most half the kernel size {kernel} (as in PyTorch)")
    out, extra = [], []
    for size, k, s, p, d in zip(in_size, kernel, stride_, pad, dilation_, strict=True):
        span = d * (k - 1) + 1
        n = _pooled_size(size, span, s, p, ceil_mode)
        if n < 1:
            raise ShapeError(
                f"output size would be below 1 for input size {tuple(in_size)}, kernel {kernel}, "
                f"stride {stride_}, padding {pad}, dilation {dilation_}"
            )
        out.append(n)
        # ceil_mode may let the last window run past the right padding: pad further with it.
        extra.append(max(p, (n - 1) * s + span - size - p))
    padding_ = Padding(pad[0], extra[0], pad[1], extra[1])
    return WindowGeometry(kernel, stride_, dilation_, padding_, tuple(in_size), tuple(out))


def _pooled_size(size: int, span: int, stride: int, pad: int, ceil_mode: bool) -> int:
    numerator = size + 2 * pad - span
    if not ceil_mode:
        return numerator // stride + 1
    n = -(-numerator // stride) + 1
    # PyTorch's rule: the last window must start inside the image or the left padding.
    if (n - 1) * stride >= size + pad:
        n -= 1
    return n
