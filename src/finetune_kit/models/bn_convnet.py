"""``bn_convnet``: a small BatchNorm ConvNet that trains fast on a CPU (the quickstart's model).

::

    block1  conv 3x3 width      -> max-pool 2 -> BN -> ReLU      28x28 -> 14x14
    block2  conv 3x3 2*width    -> max-pool 2 -> BN -> ReLU      14x14 -> 7x7
    block3  conv 3x3 4*width    -> max-pool 2 -> BN -> ReLU      7x7   -> 3x3
    pool    adaptive average pool to 3x3 -> flatten              (a no-op at 28x28)
    fc      linear 36*width -> num_classes                       (the head)

Every conv has padding 1 and no bias (the BatchNorm after it has one). At the default width 16
it has 29k parameters and costs about 1.9M multiply-adds per 28x28 image, a sixth of the
``convnet`` (11M).

Two choices set it apart from the conv-BN-ReLU-pool nets people write by hand:

* **pool before BatchNorm and ReLU** (as the CIFAR-10 speedruns do): BatchNorm and ReLU then
  run on a quarter of the pixels, and a max-pool commutes with an increasing per-channel map,
  so the net computes nearly the same function for much less work. On two AMD EPYC cores
  (``benchmarks/cpu_settings.py``, batch 256, one thread, channels_last, bfloat16 autocast) a
  training step took 33 ms of CPU time, against 41 ms for the conv-BN-ReLU-pool order;
* **a 3x3 grid into the head** instead of a global average: the head sees where in the image
  a feature is, for 5k more parameters.

The adaptive pool makes it run on any input of at least 8x8 (CIFAR's 32x32 gives a 4x4 map,
pooled to 3x3).

Example:
    >>> import torch
    >>> net = BNConvNet(num_classes=10, in_channels=1)
    >>> net(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in net.parameters())
    (torch.Size([2, 10]), 29178)
"""

from __future__ import annotations

import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models.heads import make_head
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry

__all__ = ["BNConvNet", "conv_pool_bn"]

GRID = 3  # the head sees a GRID x GRID map


def conv_pool_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (no bias) -> 2x2 max-pool -> BatchNorm -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.

    Returns:
        The block: ``(N, in, H, W) -> (N, out, H // 2, W // 2)``.

    Example:
        >>> conv_pool_bn(1, 8)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 8, 14, 14])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BNConvNet(nn.Module):
    """Three conv-pool-BN-ReLU blocks of ``width``, ``2 * width`` and ``4 * width`` channels.

    Args:
        num_classes: outputs.
        in_channels: input channels (1 for Fashion-MNIST).
        width: channels of the first block (each block doubles them); at least 1.
        dropout: dropout on the head's input.

    Raises:
        ConfigError: ``width`` is not a positive integer.

    Example:
        >>> [name for name, _ in BNConvNet(num_classes=10).named_children()]
        ['block1', 'block2', 'block3', 'pool', 'fc']
        >>> BNConvNet(num_classes=10, width=32).fc.in_features
        1152
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ConfigError(f"bn_convnet width must be a positive integer, got {width!r}.")
        self.block1 = conv_pool_bn(in_channels, width)
        self.block2 = conv_pool_bn(width, 2 * width)
        self.block3 = conv_pool_bn(2 * width, 4 * width)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(GRID), nn.Flatten())
        self.fc = make_head(4 * width * GRID * GRID, num_classes, dropout=dropout, seed=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, H, W)`` with ``H, W >= 8`` -> logits ``(N, num_classes)``."""
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.pool(x))


def _build(spec: BuildSpec) -> nn.Module:
    return BNConvNet(spec.num_classes, spec.in_channels, dropout=spec.dropout, **spec.options)


MODELS.register(
    "bn_convnet",
    ModelEntry(
        name="bn_convnet",
        build=_build,
        options=("width",),
        small_input="native",
        sizes=lambda spec: ((28, 28), (8, 8)),
        stages=lambda model: (
            ("block1", ("block1",)),
            ("block2", ("block2",)),
            ("block3", ("block3", "pool")),
            ("head", ("fc",)),
        ),
        summary="3 conv-pool-BN-ReLU blocks of width 16/32/64, 3x3 grid head (29k params); fast on CPUs",
    ),
)
