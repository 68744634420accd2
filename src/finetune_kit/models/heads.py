"""Classification heads: find the head of any model, and replace it with a fresh one.

The head is the last ``nn.Linear`` that produces the logits: ``fc`` for ResNets,
``classifier.3`` for MobileNetV3, ``classifier.1`` for EfficientNet, ``classifier.6`` for VGG.
:func:`replace_head` swaps only that module, so every other tensor of a pretrained model stays
bit-identical, and initialises the new head from a seed without touching the global RNG.

Example:
    >>> import torchvision
    >>> net = torchvision.models.mobilenet_v3_small()
    >>> get_head(replace_head(net, 7, seed=0))[0]
    'classifier.3'
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.errors import ShapeError
from finetune_kit.models._checks import check_dropout, check_num_classes
from finetune_kit.models._surgery import set_submodule
from finetune_kit.models.info import INFO_ATTR, ModelInfo, update_model_info

__all__ = ["HEAD_NAMES", "DropoutLinear", "get_head", "make_head", "replace_head"]

HEAD_NAMES = ("fc", "classifier", "head", "last_linear")
"""Attribute names searched for the head of a model without ModelInfo, in this order."""


class DropoutLinear(nn.Linear):
    """A ``Linear`` layer that applies dropout to its input first.

    Its state dict is exactly that of ``nn.Linear`` (``weight``, ``bias``), so a head with
    dropout still loads from and saves to the same keys as the plain head it replaces.

    Args:
        in_features: input features.
        out_features: output features (classes).
        bias: whether to learn a bias.
        device: where to create the parameters.
        dtype: their dtype.
        p: dropout probability applied to the input during training.

    Example:
        >>> layer = DropoutLinear(8, 3, p=0.5)
        >>> sorted(layer.state_dict())
        ['bias', 'weight']
        >>> layer.eval()(torch.zeros(2, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        p: float = 0.0,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout (training only), then the affine map. ``x: (N, in_features)``."""
        return F.linear(F.dropout(x, self.p, self.training), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def make_head(
    in_features: int,
    num_classes: int,
    *,
    dropout: float = 0.0,
    bias: bool = True,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Linear:
    """A new classification head initialised from ``seed`` (global RNG untouched).

    The initialisation is PyTorch's default for ``nn.Linear``: weight and bias uniform in
    ``[-1/sqrt(in_features), 1/sqrt(in_features)]``, drawn from a local generator seeded with
    ``seed`` on the CPU, so the same seed gives the same head on every device. With
    ``seed=None`` the values come from the global RNG, as for any new ``nn.Linear``.

    Args:
        in_features: features entering the head.
        num_classes: outputs.
        dropout: dropout probability on the head's input; 0 gives a plain ``nn.Linear``,
            otherwise a :class:`DropoutLinear`.
        bias: whether the head has a bias.
        seed: seed of the local generator, or None for the global RNG.
        device: device of the new parameters.
        dtype: dtype of the new parameters.

    Returns:
        The head module.

    Raises:
        ConfigError: ``num_classes`` < 1 or ``dropout`` not in [0, 1).

    Example:
        >>> a, b = make_head(16, 4, seed=1), make_head(16, 4, seed=1)
        >>> torch.equal(a.weight, b.weight)
        True
    """
    check_num_classes(num_classes)
    check_dropout(dropout)
    cls = DropoutLinear if dropout > 0 else nn.Linear
    extra = {"p": dropout} if dropout > 0 else {}
    if seed is None:
        return cls(in_features, num_classes, bias=bias, device=device, dtype=dtype, **extra)
    head = torch.nn.utils.skip_init(  # allocated without drawing from the global RNG
        cls, in_features, num_classes, bias=bias, device=device or "cpu", dtype=dtype, **extra
    )
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
    with torch.no_grad():
        weight = torch.empty(num_classes, in_features).uniform_(-bound, bound, generator=generator)
        head.weight.copy_(weight)
        if head.bias is not None:
            head.bias.copy_(torch.empty(num_classes).uniform_(-bound, bound, generator=generator))
    return head


def get_head(model: nn.Module) -> tuple[str, nn.Module]:
    """Find the classification head: its qualified name and the module.

    A model built by ``create_model`` names its head in its ModelInfo. For any other model the
    attributes ``fc``, ``classifier``, ``head`` and ``last_linear`` are tried in this order
    (taking the last ``nn.Linear`` inside a container), then the model's last ``nn.Linear``.

    Args:
        model: the model.

    Returns:
        ``(qualified name, module)``, e.g. ``("fc", Linear(512, 10))``.

    Raises:
        ShapeError: no head can be found.

    Example:
        >>> import torchvision
        >>> get_head(torchvision.models.resnet18())[0]
        'fc'
    """
    info = getattr(model, INFO_ATTR, None)
    if isinstance(info, ModelInfo):
        return info.head, model.get_submodule(info.head)
    for attr in HEAD_NAMES:
        found = getattr(model, attr, None)
        if isinstance(found, nn.Module):
            linear = _last_linear(found, prefix=attr)
            if linear is not None:
                return linear
    linear = _last_linear(model, prefix="")
    if linear is None:
        raise ShapeError(
            f"Cannot find the classification head of {type(model).__name__}: it has no "
            f"nn.Linear layer and none of the attributes {', '.join(HEAD_NAMES)}. Give the head "
            "one of those names, or register the model with create_model's registry."
        )
    return linear


def _last_linear(module: nn.Module, prefix: str) -> tuple[str, nn.Module] | None:
    found = None
    for name, sub in module.named_modules(prefix=prefix):
        if isinstance(sub, nn.Linear):
            found = (name, sub)
    return found


def replace_head(model: nn.Module, num_classes: int, *, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    """Replace the classification head with a fresh one for ``num_classes`` classes.

    Only the head module changes: every other parameter and buffer stays bit-identical. The
    new head keeps the old head's input width, bias, device and dtype, and is initialised from
    ``seed`` as in :func:`make_head`. The ModelInfo, if any, is updated (``num_classes``, and
    ``class_names`` cleared).

    Args:
        model: the model, changed in place.
        num_classes: outputs of the new head.
        dropout: dropout probability on the head's input (see :class:`DropoutLinear`).
        seed: seed for the head's initialisation.

    Returns:
        ``model`` itself.

    Raises:
        ShapeError: the head is not an ``nn.Linear``, or cannot be found.
        ConfigError: bad ``num_classes`` or ``dropout``.

    Example:
        >>> import torchvision
        >>> net = replace_head(torchvision.models.resnet18(), 7, seed=0)
        >>> net.fc
        Linear(in_features=512, out_features=7, bias=True)
    """
    name, old = get_head(model)
    if not isinstance(old, nn.Linear):
        raise ShapeError(
            f"The head {name!r} of {type(model).__name__} is a {type(old).__name__}; "
            "replace_head needs an nn.Linear head."
        )
    new = make_head(
        old.in_features,
        num_classes,
        dropout=dropout,
        bias=old.bias is not None,
        seed=seed,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    set_submodule(model, name, new)
    update_model_info(
        model,
        num_classes=num_classes,
        class_names=None,
        build_kwargs={"num_classes": num_classes, "dropout": float(dropout)},
    )
    return model
