"""Drop-in ``nn.Module`` replacements that run the scratch forward and backward passes.

Each class subclasses its PyTorch counterpart and overrides only ``forward``: the constructor,
the parameter initialisation, the attributes and the ``state_dict`` keys are PyTorch's own, so a
checkpoint of one loads into the other. Unbatched inputs ``(C, H, W)`` are accepted like PyTorch.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> conv = ScratchConv2d(3, 8, 3, padding="same")
    >>> ref = nn.Conv2d(3, 8, 3, padding="same")
    >>> ref.load_state_dict(conv.state_dict())
    <All keys matched successfully>
    >>> x = torch.randn(2, 3, 8, 8)
    >>> torch.allclose(conv(x), ref(x), atol=1e-6)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from finetune_kit.errors import ConfigError
from finetune_kit.scratch._args import IntPair, PaddingArg, conv_padding, to_pair
from finetune_kit.scratch.functions import (
    AvgPool2dFunction,
    Conv2dFunction,
    LinearFunction,
    MaxPool2dFunction,
    ReLUFunction,
)

__all__ = [
    "ScratchAvgPool2d",
    "ScratchConv2d",
    "ScratchLinear",
    "ScratchMaxPool2d",
    "ScratchReLU",
]


class ScratchConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward and backward are :class:`Conv2dFunction` (im2col, by hand).

    Same constructor, parameters (``weight (O, C // groups, kh, kw)``, ``bias (O,)``),
    initialisation and ``state_dict`` keys as :class:`torch.nn.Conv2d`. Input
    ``(N, C, H, W)`` or ``(C, H, W)``; output ``(N, O, H_out, W_out)`` (or ``(O, H_out, W_out)``).

    Args:
        in_channels: ``C``.
        out_channels: ``O``.
        kernel_size: int or ``(kh, kw)``.
        stride: int or ``(sh, sw)``.
        padding: int, pair, ``"same"`` (stride 1 only) or ``"valid"``.
        dilation: int or pair.
        groups: dividing ``C`` and ``O``.
        bias: whether to learn an additive bias.
        padding_mode: only ``"zeros"`` is implemented.
        device: where to create the parameters.
        dtype: the parameters' dtype.

    Raises:
        ConfigError: ``padding_mode`` other than ``"zeros"``, channels not divisible by
            ``groups``, or invalid stride, padding or dilation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: PaddingArg = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ConfigError(
                f"ScratchConv2d implements padding_mode='zeros' only, got {padding_mode!r}; "
                "use torch.nn.Conv2d for 'reflect', 'replicate' or 'circular'"
            )
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ConfigError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        kernel = to_pair(kernel_size, "kernel_size", minimum=1)
        conv_padding(
            padding,
            kernel=kernel,
            stride=to_pair(stride, "stride", minimum=1),
            dilation=to_pair(dilation, "dilation", minimum=1),
        )
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` (``(N, C, H, W)`` or ``(C, H, W)``) with the scratch Function."""
        batched = x if x.dim() != 3 else x.unsqueeze(0)
        out = Conv2dFunction.apply(
            batched, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        return out if x.dim() != 3 else out.squeeze(0)


class ScratchLinear(nn.Linear):
    """``nn.Linear`` whose forward and backward are :class:`LinearFunction`.

    Same constructor, parameters and ``state_dict`` keys as :class:`torch.nn.Linear`.
    Input ``(..., in_features)``, output ``(..., out_features)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``x @ W^T + b``."""
        return LinearFunction.apply(x, self.weight, self.bias)


class ScratchReLU(nn.ReLU):
    """``nn.ReLU`` (including ``inplace=True``) with the hand-written :class:`ReLUFunction`."""

    def forward(self, x: Tensor) -> Tensor:
        """Zero the negative entries of ``x`` (any shape)."""
        return ReLUFunction.apply(x, self.inplace)


class ScratchMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with the hand-written :class:`MaxPool2dFunction`.

    Same constructor as :class:`torch.nn.MaxPool2d`; with ``return_indices=True`` the forward
    returns ``(out, indices)``. Input ``(N, C, H, W)`` or ``(C, H, W)``.
    """

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Take the maximum over each window."""
        batched = x if x.dim() != 3 else x.unsqueeze(0)
        out, indices = MaxPool2dFunction.apply(
            batched, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        if x.dim() == 3:
            out, indices = out.squeeze(0), indices.squeeze(0)
        return (out, indices) if self.return_indices else out


class ScratchAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` with the hand-written :class:`AvgPool2dFunction`.

    Same constructor as :class:`torch.nn.AvgPool2d`. Input ``(N, C, H, W)`` or ``(C, H, W)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Average over each window."""
        batched = x if x.dim() != 3 else x.unsqueeze(0)
        out = AvgPool2dFunction.apply(
            batched,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )
        return out if x.dim() != 3 else out.squeeze(0)
