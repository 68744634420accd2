"""ResNet-9: the fast residual net of the CIFAR-10 speedruns (Myrtle.ai / DAWNBench).

::

    prep    conv 64                                   (3x3, BN, ReLU)
    layer1  conv 128, max-pool 2, residual(conv 128, conv 128)
    layer2  conv 256, max-pool 2
    layer3  conv 512, max-pool 2, residual(conv 512, conv 512)
    pool    global max-pool -> flatten
    fc      linear 512 -> num_classes                 (the head)

Every conv is 3x3, padding 1, no bias, followed by BatchNorm and ReLU. The global pool makes
it work on any input of at least 8x8 (32 for CIFAR, 28 for MNIST-like data). The speedruns'
fixed 0.125 logit scale is left out, so the logits are those of a plain linear head.

Example:
    >>> import torch
    >>> ResNet9(num_classes=10, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from finetune_kit.models.heads import make_head
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry

__all__ = ["ResNet9", "Residual", "conv_bn"]


def conv_bn(in_channels: int, out_channels: int, *, pool: bool = False) -> nn.Sequential:
    """3x3 conv (no bias) -> BatchNorm -> ReLU, then a 2x2 max-pool when ``pool``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        pool: halve the resolution at the end.

    Returns:
        The block; ``(N, in, H, W) -> (N, out, H, W)`` (``H // 2, W // 2`` with ``pool``).

    Example:
        >>> len(conv_bn(3, 8, pool=True))
        4
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + block(x)`` with ``block`` two :func:`conv_bn` of ``channels`` channels.

    Args:
        channels: input and output channels.

    Example:
        >>> Residual(8)(torch.zeros(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, H, W)`` -> same shape."""
        return x + self.block(x)


class ResNet9(nn.Module):
    """The speedrun ResNet-9 (layout in the module doc), about 6.6M parameters.

    Args:
        num_classes: outputs.
        in_channels: input channels.
        dropout: dropout on the head's input.

    Example:
        >>> [name for name, _ in ResNet9(num_classes=10).named_children()]
        ['prep', 'layer1', 'layer2', 'layer3', 'pool', 'fc']
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.prep = conv_bn(in_channels, 64)
        self.layer1 = nn.Sequential(conv_bn(64, 128, pool=True), Residual(128))
        self.layer2 = conv_bn(128, 256, pool=True)
        self.layer3 = nn.Sequential(conv_bn(256, 512, pool=True), Residual(512))
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.fc = make_head(512, num_classes, dropout=dropout, seed=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, H, W)`` with ``H, W >= 8`` -> logits ``(N, num_classes)``."""
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(self.pool(x))


def _build(spec: BuildSpec) -> nn.Module:
    return ResNet9(spec.num_classes, spec.in_channels, dropout=spec.dropout)


MODELS.register(
    "resnet9",
    ModelEntry(
        name="resnet9",
        build=_build,
        small_input="native",
        sizes=lambda spec: ((32, 32), (8, 8)),
        stages=lambda model: (
            ("prep", ("prep",)),
            ("layer1", ("layer1",)),
            ("layer2", ("layer2",)),
            ("layer3", ("layer3",)),
            ("head", ("fc",)),
        ),
        summary="ResNet-9 of the CIFAR-10 speedruns (6.6M params, 32x32 or 28x28 inputs)",
    ),
)
