"""The two small classic nets: ``convnet`` (the MNIST recipe) and ``lenet`` (CIFAR-10 basics).

Both flatten their last feature map into a fully connected layer, so they are built for one
input size, given by the ``input_size`` option (``convnet``: 28, ``lenet``: 32); an input of
another size raises a :class:`~finetune_kit.errors.ShapeError` that says how to rebuild.

Example:
    >>> import torch
    >>> net = ConvNet(num_classes=10, in_channels=1)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.models.heads import make_head
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry

__all__ = ["ConvNet", "LeNet"]


def _pair(size: object, *, model: str, minimum: int) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    valid = (
        isinstance(pair, tuple | list)
        and len(pair) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= minimum for s in pair)
    )
    if not valid:
        raise ConfigError(
            f"{model} input_size must be an integer >= {minimum} or a pair (H, W) of them, got {size!r}."
        )
    return int(pair[0]), int(pair[1])


def _check_size(x: torch.Tensor, expected: tuple[int, int], model: str) -> None:
    if tuple(x.shape[-2:]) != expected:
        got = "x".join(str(s) for s in x.shape[-2:])
        raise ShapeError(
            f"{model} was built for {expected[0]}x{expected[1]} inputs and got {got} "
            f"(input shape {tuple(x.shape)}). Resize the images, or build the model for them: "
            f"create_model({model!r}, ..., input_size={tuple(x.shape[-2:])})."
        )


class ConvNet(nn.Module):
    """The Keras / PyTorch-examples MNIST convnet.

    conv 3x3 32 -> ReLU -> conv 3x3 64 -> ReLU -> max-pool 2 -> dropout 0.25 -> flatten ->
    fc 128 -> ReLU -> dropout 0.5 -> fc ``num_classes`` (the head, ``fc2``). About 1.2M
    parameters at 28x28.

    Args:
        num_classes: outputs.
        in_channels: input channels (1 for MNIST).
        input_size: the ``(H, W)`` (or one int) the net is built for; at least 6.
        dropout: extra dropout on the head's input, besides the recipe's 0.5.

    Example:
        >>> ConvNet(num_classes=10, in_channels=1).fc1
        Linear(in_features=9216, out_features=128, bias=True)
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = _pair(input_size, model="convnet", minimum=6)
        height, width = ((s - 4) // 2 for s in self.input_size)
        self.conv1 = nn.Conv2d(in_channels, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.pool = nn.MaxPool2d(2)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * height * width, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = make_head(128, num_classes, dropout=dropout, seed=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, H, W)`` with ``(H, W) == input_size`` -> logits ``(N, num_classes)``."""
        _check_size(x, self.input_size, "convnet")
        x = F.relu(self.conv1(x))
        x = self.dropout1(self.pool(F.relu(self.conv2(x))))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


class LeNet(nn.Module):
    """The LeNet-style net of the PyTorch CIFAR-10 tutorial.

    conv 6@5x5 -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2 -> fc 120 -> ReLU ->
    fc 84 -> ReLU -> fc ``num_classes`` (the head, ``fc3``).

    Args:
        num_classes: outputs.
        in_channels: input channels (3 for CIFAR-10).
        input_size: the ``(H, W)`` (or one int) the net is built for; at least 16.
        dropout: dropout on the head's input.

    Example:
        >>> LeNet(num_classes=10).fc1
        Linear(in_features=400, out_features=120, bias=True)
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = _pair(input_size, model="lenet", minimum=16)
        height, width = (((s - 4) // 2 - 4) // 2 for s in self.input_size)
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * height * width, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = make_head(84, num_classes, dropout=dropout, seed=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, H, W)`` with ``(H, W) == input_size`` -> logits ``(N, num_classes)``."""
        _check_size(x, self.input_size, "lenet")
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


def _build_convnet(spec: BuildSpec) -> nn.Module:
    return ConvNet(spec.num_classes, spec.in_channels, dropout=spec.dropout, **spec.options)


def _build_lenet(spec: BuildSpec) -> nn.Module:
    return LeNet(spec.num_classes, spec.in_channels, dropout=spec.dropout, **spec.options)


def _sizes(default: int, model: str, minimum: int):
    def sizes(spec: BuildSpec) -> tuple[tuple[int, int], tuple[int, int]]:
        size = _pair(spec.options.get("input_size", default), model=model, minimum=minimum)
        return size, size

    return sizes


MODELS.register(
    "convnet",
    ModelEntry(
        name="convnet",
        build=_build_convnet,
        options=("input_size",),
        small_input="native",
        sizes=_sizes(28, "convnet", 6),
        stages=lambda model: (
            ("conv1", ("conv1",)),
            ("conv2", ("conv2", "pool", "dropout1")),
            ("fc1", ("fc1", "dropout2")),
            ("head", ("fc2",)),
        ),
        summary="MNIST convnet: conv32-conv64-pool-fc128 (1.2M params at 28x28)",
    ),
)

MODELS.register(
    "lenet",
    ModelEntry(
        name="lenet",
        build=_build_lenet,
        options=("input_size",),
        small_input="native",
        sizes=_sizes(32, "lenet", 16),
        stages=lambda model: (
            ("conv1", ("conv1", "pool1")),
            ("conv2", ("conv2", "pool2")),
            ("fc1", ("fc1",)),
            ("fc2", ("fc2",)),
            ("head", ("fc3",)),
        ),
        summary="LeNet-style CIFAR-10 net: conv6-conv16-fc120-fc84 (62k params at 32x32)",
    ),
)
