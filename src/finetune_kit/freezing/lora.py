"""LoRA layers: a frozen ``Conv2d`` or ``Linear`` plus a trainable low-rank update beside it.

LoRA (Hu et al., 2021) keeps a pretrained layer frozen and learns a low-rank update beside it:
``y = base(x) + (alpha / rank) * B(A(x))``. For a ``Linear`` layer, A is ``in -> rank`` and B
is ``rank -> out``. For a ``Conv2d`` layer, A is a ``k x k`` convolution to ``rank`` channels
with the base layer's stride, padding, dilation and padding mode, and B a ``1 x 1``
convolution to the output channels; since B mixes channels only, ``B(A(x))`` is the
convolution of ``x`` with the kernel ``B @ A``, so the update folds into the base kernel
exactly (:meth:`merge`). Only ungrouped convolutions (``groups=1``) take LoRA: a grouped
kernel cannot hold the dense update. B starts at zero, so a freshly wrapped layer computes
exactly what its base computed.

State-dict keys are predictable: a wrapped layer ``layer4.1.conv2`` holds
``layer4.1.conv2.base.weight`` (and ``.base.bias``), ``layer4.1.conv2.lora_a.weight`` and
``layer4.1.conv2.lora_b.weight``. Wrapping the layers of a whole model, merging and unmerging
are in :mod:`finetune_kit.freezing.peft`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> layer = LoRAConv2d(nn.Conv2d(3, 8, 3, padding=1), rank=2, alpha=4)
    >>> x = torch.randn(2, 3, 6, 6)
    >>> torch.equal(layer(x), layer.base(x))
    True
    >>> sorted(layer.state_dict())
    ['base.bias', 'base.weight', 'lora_a.weight', 'lora_b.weight']
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from finetune_kit.errors import ConfigError

__all__ = [
    "LoRAConv2d",
    "LoRALayer",
    "LoRALinear",
    "check_lora_options",
    "lora_layers",
    "lora_param_names",
]


def check_lora_options(rank: object, alpha: object) -> tuple[int, float]:
    """Check a LoRA rank and alpha before any layer is wrapped.

    Args:
        rank: rank of the update: an integer >= 1.
        alpha: scale numerator: a number > 0.

    Returns:
        ``(rank, float(alpha))``.

    Raises:
        ConfigError: a rank or alpha out of range, or of the wrong type.

    Example:
        >>> check_lora_options(4, 8)
        (4, 8.0)
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"LoRA rank must be an integer >= 1, e.g. 4; got {rank!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ConfigError(f"LoRA alpha must be a number > 0, e.g. 8; got {alpha!r}.")
    return rank, float(alpha)


class LoRALayer(nn.Module):
    """Base of the LoRA wrappers: the frozen base, the scale, merging.

    Subclasses build ``base``, ``lora_a`` and ``lora_b``, call ``_init_lora`` and implement
    :meth:`delta_weight`; :class:`LoRALinear` and :class:`LoRAConv2d` are the two there are.

    Attributes:
        base: the frozen layer being adapted.
        lora_a: the down projection A (to ``rank`` features or channels).
        lora_b: the up projection B (zero at initialisation).
        rank: rank of the update.
        alpha: scale numerator.
        scaling: ``alpha / rank``.
        merged: whether the update is folded into ``base.weight`` now.

    Example:
        >>> layer = LoRALinear(nn.Linear(2, 2))
        >>> isinstance(layer, LoRALayer), layer.merged
        (True, False)
        >>> layer.merge(); layer.merged
        True
    """

    base: nn.Module
    lora_a: nn.Module
    lora_b: nn.Module

    def _init_lora(self, rank: int, alpha: float, seed: int | None) -> None:
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.merged = False
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.lora_a.weight.device).manual_seed(seed)
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5), generator=gen)
        nn.init.zeros_(self.lora_b.weight)

    def delta_weight(self) -> Tensor:
        """The update ``(alpha / rank) * B @ A`` in the base weight's shape and dtype."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``base(x) + scaling * B(A(x))`` (just ``base(x)`` while merged)."""
        out = self.base(x)
        if self.merged:
            return out
        return out + self.lora_b(self.lora_a(x)) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (in place); the forward then skips the branch."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the base weight again (exact up to float rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


class LoRALinear(LoRALayer):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``B @ A``.

    Args:
        base: the layer to adapt (any ``nn.Linear``, subclasses included); kept as ``.base``.
        rank: rank of the update.
        alpha: scale numerator: the update is multiplied by ``alpha / rank``.
        seed: seed of A's initialisation (None: the global RNG).

    Example:
        >>> layer = LoRALinear(nn.Linear(6, 3), rank=2, alpha=4)
        >>> layer.lora_a.weight.shape, layer.lora_b.weight.shape, layer.scaling
        (torch.Size([2, 6]), torch.Size([3, 2]), 2.0)
    """

    def __init__(self, base: nn.Linear, *, rank: int = 4, alpha: float = 8.0, seed: int | None = 0) -> None:
        super().__init__()
        rank, alpha = check_lora_options(rank, alpha)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.base = base
        self.lora_a = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False, **factory)
        self._init_lora(rank, alpha, seed)

    def delta_weight(self) -> Tensor:
        """``(alpha / rank) * B @ A``: ``(out_features, in_features)``."""
        return (self.lora_b.weight @ self.lora_a.weight) * self.scaling


class LoRAConv2d(LoRALayer):
    """A frozen ``nn.Conv2d`` plus a trainable low-rank update: a ``k x k`` conv A, a 1x1 conv B.

    Args:
        base: an ungrouped convolution (``groups=1``); kept as ``.base``.
        rank: channels between A and B.
        alpha: scale numerator: the update is multiplied by ``alpha / rank``.
        seed: seed of A's initialisation (None: the global RNG).

    Raises:
        ConfigError: ``base`` is grouped or depthwise (``groups > 1``).

    Example:
        >>> layer = LoRAConv2d(nn.Conv2d(3, 8, 3, stride=2), rank=2)
        >>> layer.lora_a.weight.shape, layer.lora_b.weight.shape
        (torch.Size([2, 3, 3, 3]), torch.Size([8, 2, 1, 1]))
    """

    def __init__(self, base: nn.Conv2d, *, rank: int = 4, alpha: float = 8.0, seed: int | None = 0) -> None:
        super().__init__()
        rank, alpha = check_lora_options(rank, alpha)
        if base.groups != 1:
            raise ConfigError(
                f"LoRA needs an ungrouped convolution (groups=1); this one has groups="
                f"{base.groups}. Leave grouped and depthwise convolutions out of the targets."
            )
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.base = base
        self.lora_a = nn.Conv2d(
            base.in_channels,
            rank,
            base.kernel_size,
            stride=base.stride,
            padding=base.padding,
            dilation=base.dilation,
            bias=False,
            padding_mode=base.padding_mode,
            **factory,
        )
        self.lora_b = nn.Conv2d(rank, base.out_channels, 1, bias=False, **factory)
        self._init_lora(rank, alpha, seed)

    def delta_weight(self) -> Tensor:
        """``(alpha / rank) * B @ A`` as a kernel: ``(out_channels, in_channels, kH, kW)``."""
        b = self.lora_b.weight[:, :, 0, 0]
        return torch.einsum("or,rikl->oikl", b, self.lora_a.weight) * self.scaling


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALayer]]:
    """The ``(qualified name, wrapper)`` pairs of every LoRA layer in ``model``.

    Args:
        model: any module (a LoRA layer itself is listed under the name ``""``).

    Returns:
        The pairs, in ``model.named_modules()`` order.

    Example:
        >>> lora_layers(nn.Sequential(LoRALinear(nn.Linear(2, 2))))[0][0]
        '0'
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALayer)]


def lora_param_names(model: nn.Module) -> list[str]:
    """Qualified names of the LoRA parameters (``*.lora_a.weight``, ``*.lora_b.weight``).

    Args:
        model: a model with LoRA layers inside it.

    Returns:
        The names, in ``model.named_parameters()`` order (``[]`` without LoRA layers).

    Example:
        >>> lora_param_names(nn.Sequential(LoRALinear(nn.Linear(2, 2))))
        ['0.lora_a.weight', '0.lora_b.weight']
    """
    return [n for n, _ in model.named_parameters() if n.endswith((".lora_a.weight", ".lora_b.weight"))]
