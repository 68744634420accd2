"""What a model is, carried with the model: :class:`ModelInfo`.

:func:`~finetune_kit.models.create_model` attaches a frozen :class:`ModelInfo` to every model it
builds, as the attribute ``model.finetune_kit_info``. It says how to rebuild the architecture
(``name`` and ``build_kwargs``), which module is the classification head, how the model splits
into stages (for freezing and the summary), and what its weights expect as input: image size,
normalisation (mean/std) and class names when the weights know them.

Example:
    >>> from finetune_kit.models import create_model, model_info
    >>> info = model_info(create_model("lenet", num_classes=10))
    >>> info.head, info.input_size, [name for name, _ in info.stages]
    ('fc3', (32, 32), ['conv1', 'conv2', 'fc1', 'fc2', 'head'])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from finetune_kit.errors import ConfigError

__all__ = [
    "INFO_ATTR",
    "ModelInfo",
    "Stages",
    "adapt_stats",
    "model_info",
    "set_model_info",
    "update_model_info",
]

INFO_ATTR = "finetune_kit_info"
"""The attribute under which a model carries its :class:`ModelInfo`."""

Stages = tuple[tuple[str, tuple[str, ...]], ...]
"""Ordered ``(stage name, (qualified module names, ...))`` pairs, input side first."""


@dataclass(frozen=True)
class ModelInfo:
    """Architecture and weights metadata of a model built by ``create_model``.

    Attributes:
        name: registered model name, e.g. ``"resnet18"``.
        num_classes: number of outputs of the head.
        in_channels: number of input channels the first convolution takes.
        input_size: recommended input ``(H, W)``: 224 for torchvision models, 32 for
            ``small_input`` ResNets, ``lenet`` and ``resnet9``, 28 for ``convnet``.
        min_input_size: smallest ``(H, W)`` the model runs on (``convnet`` and ``lenet`` take
            exactly their ``input_size``).
        head: qualified name of the classification head, e.g. ``"fc"`` or ``"classifier.3"``.
        stages: ordered ``(stage name, module names)`` pairs; the last stage is ``"head"``.
        mean: per-channel normalisation mean the weights were trained with, or None.
        std: per-channel normalisation std, or None.
        class_names: the weights' class names when the head was loaded with them, else None.
        weights: where the weights came from (``"ResNet18_Weights.IMAGENET1K_V1"``, a path) or
            None for a fresh initialisation.
        build_kwargs: keyword arguments such that ``create_model(name, **build_kwargs)`` rebuilds
            the same architecture (with fresh weights).
        load_report: what the last weights load did, as ``LoadReport.to_dict()`` (None: no
            weights were loaded); ``finetune_kit.models.load.load_report_of`` reads it back.

    Example:
        >>> info = ModelInfo(name="net", num_classes=2, in_channels=1, input_size=(28, 28),
        ...                  min_input_size=(28, 28), head="fc", stages=(("head", ("fc",)),))
        >>> info.stage_names
        ('head',)
    """

    name: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    min_input_size: tuple[int, int]
    head: str
    stages: Stages
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: list[str] | None = field(default=None, hash=False)
    weights: str | None = None
    build_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    load_report: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stage names in order, input side first."""
        return tuple(name for name, _ in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, numbers and strings, safe for ``torch.save`` + ``weights_only`` and JSON.

        Returns:
            A dict that :meth:`from_dict` turns back into an equal ``ModelInfo``.

        Example:
            >>> info = ModelInfo("net", 2, 1, (28, 28), (28, 28), "fc", (("head", ("fc",)),))
            >>> ModelInfo.from_dict(info.to_dict()) == info
            True
        """
        data = dataclasses.asdict(self)
        data["stages"] = [[name, list(modules)] for name, modules in self.stages]
        for key in ("input_size", "min_input_size", "mean", "std"):
            data[key] = None if data[key] is None else list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Rebuild a ``ModelInfo`` from :meth:`to_dict` output.

        Args:
            data: the dict; unknown keys raise.

        Returns:
            The ModelInfo.

        Raises:
            ConfigError: a key is unknown or a required key is missing.

        Example:
            >>> ModelInfo.from_dict({"name": "n", "num_classes": 2, "in_channels": 1,
            ...     "input_size": [8, 8], "min_input_size": [8, 8], "head": "fc",
            ...     "stages": [["head", ["fc"]]]}).input_size
            (8, 8)
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"Unknown ModelInfo keys {unknown}; expected some of {sorted(names)}.")
        values = dict(data)
        values["stages"] = tuple((s, tuple(m)) for s, m in data.get("stages", ()))
        for key in ("input_size", "min_input_size", "mean", "std"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"Incomplete ModelInfo {sorted(data)}: {err}.") from err


def model_info(model: nn.Module) -> ModelInfo:
    """Return the :class:`ModelInfo` that ``create_model`` attached to ``model``.

    Args:
        model: a model built by :func:`~finetune_kit.models.create_model` (or one given an info
            with :func:`set_model_info`).

    Returns:
        The model's ModelInfo.

    Raises:
        ConfigError: the model carries no ModelInfo.

    Example:
        >>> from finetune_kit.models import create_model
        >>> model_info(create_model("convnet", num_classes=10)).input_size
        (28, 28)
    """
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo):
        raise ConfigError(
            f"This {type(model).__name__} carries no finetune_kit ModelInfo (attribute "
            f"'{INFO_ATTR}'). Build the model with finetune_kit.models.create_model, or attach "
            "one with finetune_kit.models.set_model_info(model, ModelInfo(...))."
        )
    return info


def set_model_info(model: nn.Module, info: ModelInfo) -> nn.Module:
    """Attach ``info`` to ``model`` as ``model.finetune_kit_info`` and return the model.

    Args:
        model: any module.
        info: its metadata.

    Returns:
        ``model`` itself.

    Example:
        >>> from torch import nn
        >>> net = set_model_info(nn.Linear(4, 2),
        ...     ModelInfo("lin", 2, 4, (1, 1), (1, 1), "", (("head", ("",)),)))
        >>> model_info(net).num_classes
        2
    """
    if not isinstance(info, ModelInfo):
        raise ConfigError(f"set_model_info expects a ModelInfo, got {type(info).__name__}.")
    setattr(model, INFO_ATTR, info)
    return model


def update_model_info(model: nn.Module, **changes: Any) -> None:
    """Replace fields of the model's ModelInfo; does nothing when the model has none.

    ``build_kwargs`` given here are merged into the existing ones.

    Args:
        model: the model.
        **changes: ModelInfo fields to replace.

    Example:
        >>> from finetune_kit.models import create_model
        >>> net = create_model("lenet", num_classes=10)
        >>> update_model_info(net, class_names=list("abcdefghij"))
        >>> model_info(net).class_names[:3]
        ['a', 'b', 'c']
    """
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo):
        return
    if "build_kwargs" in changes:
        changes["build_kwargs"] = {**info.build_kwargs, **changes["build_kwargs"]}
    set_model_info(model, dataclasses.replace(info, **changes))


def adapt_stats(stats: tuple[float, ...] | None, in_channels: int) -> tuple[float, ...] | None:
    """Carry per-channel mean or std over to ``in_channels`` channels.

    The same rule as for the filters: one channel takes the average of the given values;
    other counts repeat them cyclically (RGB -> RGBRGB...).

    Args:
        stats: per-channel values, or None.
        in_channels: the model's number of input channels.

    Returns:
        ``in_channels`` values, or None when ``stats`` is None.

    Example:
        >>> adapt_stats((0.485, 0.456, 0.406), 1)
        (0.449,)
        >>> adapt_stats((0.1, 0.2, 0.3), 4)
        (0.1, 0.2, 0.3, 0.1)
    """
    if stats is None:
        return None
    values = tuple(float(v) for v in stats)
    if len(values) == in_channels:
        return values
    if in_channels == 1:
        return (round(sum(values) / len(values), 6),)
    return tuple(values[i % len(values)] for i in range(in_channels))
