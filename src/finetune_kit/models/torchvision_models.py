"""The torchvision models: ResNets, Wide ResNet, MobileNetV3, EfficientNet-B0, VGG-11-BN.

Each is built as torchvision defines it (``weights=None``; pretrained weights are loaded
afterwards by ``create_model``), then:

1. the head is replaced by a new one for ``num_classes`` classes, seeded from ``seed``
   (``fc``, ``classifier.3``, ``classifier.1`` or ``classifier.6``);
2. the input conv is adapted to ``in_channels`` (see :mod:`finetune_kit.models.adapt`);
3. for ResNets with ``small_input=True``, the 32-pixel stem is put in.

Their stages (for freezing and the summary): ResNets ``stem, layer1..layer4, head``;
MobileNetV3 ``stem, stage1..stageK`` (feature blocks grouped at each stride-2 block),
``neck`` (last 1x1 conv and the pre-logits layer), ``head``; EfficientNet ``stem,
stage1..stage7, neck, head``; VGG ``block1..block5`` (split after each max-pool),
``classifier``, ``head``.

Example:
    >>> from finetune_kit.models import MODELS
    >>> [name for name, _ in MODELS.get("vgg11_bn").stages(build_torchvision("vgg11_bn"))]
    ['block1', 'block2', 'block3', 'block4', 'block5', 'classifier', 'head']
"""

from __future__ import annotations

import torchvision
from torch import nn

from finetune_kit.models.adapt import adapt_input_channels, adapt_small_input
from finetune_kit.models.heads import replace_head
from finetune_kit.models.info import Stages
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry

__all__ = ["RESNETS", "TORCHVISION_MODELS", "build_torchvision"]

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2")
TORCHVISION_MODELS = (
    *RESNETS,
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "vgg11_bn",
)


def build_torchvision(name: str, spec: BuildSpec | None = None) -> nn.Module:
    """Build torchvision's ``name`` without weights and fit it to ``spec`` (steps in module doc).

    Args:
        name: torchvision model name, e.g. ``"resnet18"``.
        spec: what to build; None keeps torchvision's 1000 classes and 3 channels.

    Returns:
        The model.

    Example:
        >>> build_torchvision("resnet18", BuildSpec(num_classes=7, in_channels=1)).conv1.in_channels
        1
    """
    model = torchvision.models.get_model(name, weights=None)
    if spec is None:
        return model
    replace_head(model, spec.num_classes, dropout=spec.dropout, seed=spec.seed)
    if spec.in_channels != 3:
        adapt_input_channels(model, spec.in_channels)
    if spec.small_input:
        adapt_small_input(model)
    return model


def _resnet_stages(model: nn.Module) -> Stages:
    """``stem`` (conv1, bn1, relu, maxpool), ``layer1`` .. ``layer4``, ``head`` (fc)."""
    return (
        ("stem", ("conv1", "bn1", "relu", "maxpool")),
        *((f"layer{i}", (f"layer{i}",)) for i in range(1, 5)),
        ("head", ("fc",)),
    )


def _strides_two(block: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in block.modules())


def _mobilenet_stages(model: nn.Module) -> Stages:
    """``stem``, ``stage1..K`` (a new stage at every stride-2 block), ``neck``, ``head``."""
    features = model.features
    groups: list[list[str]] = []
    for index in range(1, len(features) - 1):
        if not groups or _strides_two(features[index]):
            groups.append([])
        groups[-1].append(f"features.{index}")
    last = f"features.{len(features) - 1}"
    return (
        ("stem", ("features.0",)),
        *((f"stage{i}", tuple(g)) for i, g in enumerate(groups, start=1)),
        ("neck", (last, "avgpool", "classifier.0", "classifier.1", "classifier.2")),
        ("head", ("classifier.3",)),
    )


def _efficientnet_stages(model: nn.Module) -> Stages:
    """``stem``, ``stage1..7`` (EfficientNet's own stages), ``neck`` (last 1x1 conv), ``head``."""
    count = len(model.features)
    return (
        ("stem", ("features.0",)),
        *((f"stage{i}", (f"features.{i}",)) for i in range(1, count - 1)),
        ("neck", (f"features.{count - 1}", "avgpool", "classifier.0")),
        ("head", ("classifier.1",)),
    )


def _vgg_stages(model: nn.Module) -> Stages:
    """``block1..5`` (features split after each max-pool), ``classifier``, ``head``."""
    blocks: list[list[str]] = [[]]
    for index, layer in enumerate(model.features):
        blocks[-1].append(f"features.{index}")
        if isinstance(layer, nn.MaxPool2d):
            blocks.append([])
    blocks = [b for b in blocks if b]
    hidden = tuple(f"classifier.{i}" for i in range(len(model.classifier) - 1))
    return (
        *((f"block{i}", tuple(b)) for i, b in enumerate(blocks, start=1)),
        ("classifier", ("avgpool", *hidden)),
        ("head", (f"classifier.{len(model.classifier) - 1}",)),
    )


def _min_size(name: str) -> tuple[int, int]:
    """torchvision's own smallest supported input for ``name`` (its weights' ``min_size``)."""
    return tuple(torchvision.models.get_model_weights(name).DEFAULT.meta["min_size"])


def _entry(name: str, stages, summary: str) -> ModelEntry:
    is_resnet = name in RESNETS
    min_size = _min_size(name)

    def sizes(spec: BuildSpec) -> tuple[tuple[int, int], tuple[int, int]]:
        return ((32, 32) if spec.small_input else (224, 224)), min_size

    return ModelEntry(
        name=name,
        build=lambda spec: build_torchvision(name, spec),
        small_input="stem" if is_resnet else "none",
        sizes=sizes,
        stages=stages,
        torchvision_name=name,
        summary=summary,
    )


_SUMMARIES = {
    "resnet18": "ResNet-18 (11.7M params), torchvision",
    "resnet34": "ResNet-34 (21.8M params), torchvision",
    "resnet50": "ResNet-50 (25.6M params), torchvision",
    "resnet101": "ResNet-101 (44.5M params), torchvision",
    "resnet152": "ResNet-152 (60.2M params), torchvision",
    "wide_resnet50_2": "Wide ResNet-50-2 (68.9M params), torchvision",
    "mobilenet_v3_small": "MobileNetV3-Small (2.5M params), torchvision",
    "mobilenet_v3_large": "MobileNetV3-Large (5.5M params), torchvision",
    "efficientnet_b0": "EfficientNet-B0 (5.3M params), torchvision",
    "vgg11_bn": "VGG-11 with BatchNorm (132.9M params), torchvision",
}

_STAGES = {
    **dict.fromkeys(RESNETS, _resnet_stages),
    "mobilenet_v3_small": _mobilenet_stages,
    "mobilenet_v3_large": _mobilenet_stages,
    "efficientnet_b0": _efficientnet_stages,
    "vgg11_bn": _vgg_stages,
}

for _name in TORCHVISION_MODELS:
    MODELS.register(_name, _entry(_name, _STAGES[_name], _SUMMARIES[_name]))
