"""Transform presets: training augmentation, resizing and normalisation recipes, by name.

A :class:`Preset` says what happens to an image on its way into the model: training augmentation
(random crop with padding, horizontal flip, or ``RandomResizedCrop``), an optional resize to a
pretrained model's input size, and which statistics normalise it (the dataset's own, computed from
the training split, or ImageNet's). Both loader paths read the same preset: the DataLoader path
builds torchvision transforms from it (:meth:`Preset.train_transform`), the device loader runs the
equivalent batched operations on the device (``device_capable``).

========== ======================================================= =============================
preset     training                                                evaluation
========== ======================================================= =============================
mnist      normalise (digits are not flip-symmetric)                normalise
fashion    RandomCrop(28, padding=2) + horizontal flip + normalise  normalise
cifar      RandomCrop(size, padding=4) + horizontal flip + normalise normalise
imagenet   RandomResizedCrop(224) + flip (DataLoader path);         Resize(224) + CenterCrop(224)
           RandomCrop(size, padding=size//8) + flip + resize to     + ImageNet mean/std
           224 (device path); ImageNet mean/std
small      RandomCrop(size, padding=size//8) + flip + normalise      normalise
photo      RandomResizedCrop(stored size) + flip (DataLoader path);  normalise
           RandomCrop(size, padding=size//8) + flip (device path)
none       normalise                                                normalise
========== ======================================================= =============================

``preset="auto"`` picks ``imagenet`` when the model's weights want 224-pixel input, otherwise the
dataset's own recipe (``fashion`` for Fashion-MNIST, ``mnist`` for MNIST, ``cifar`` for CIFAR,
``photo`` or ``small`` by image size for image folders; ``cifar`` for other 32x32 colour data),
else ``none``.

Example:
    >>> from finetune_kit.data import list_presets
    >>> list_presets()
    ['cifar', 'fashion', 'imagenet', 'mnist', 'none', 'photo', 'small']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torchvision.transforms import v2

from finetune_kit.errors import ConfigError
from finetune_kit.registry import Registry

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "Preset",
    "get_preset",
    "list_presets",
    "normalization_stats",
    "preset_for_size",
    "resolve_preset",
    "weights_input_size",
]

log = logging.getLogger("finetune_kit.data")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """A named recipe of training augmentation, resizing and normalisation.

    Args:
        name: registry key.
        description: one line for listings and logs.
        crop_padding: training random crop of the stored size after zero padding by this many
            pixels on each side (0: no crop). ``None`` with ``resize``: ``size // 8``.
        hflip: training horizontal flip with probability 0.5.
        resize: input size of the model; evaluation resizes the shorter side to it and
            centre-crops (``Resize`` + ``CenterCrop``); None keeps the stored size.
        random_resized_crop: on the DataLoader path, train with ``RandomResizedCrop`` to
            ``resize`` (or the stored size) (+ flip) instead of crop, flip and resize; the
            device path crops with padding instead.
        normalization: ``"dataset"`` (training-split statistics) or ``"imagenet"`` (the
            weights' statistics, ImageNet's by default).
        device_capable: the device loader implements this preset.

    Example:
        >>> p = Preset("tiny", "flip only", hflip=True)
        >>> p.input_size((28, 28)), p.device_capable
        ((28, 28), True)
    """

    name: str
    description: str
    crop_padding: int | None = 0
    hflip: bool = False
    resize: int | None = None
    random_resized_crop: bool = False
    normalization: Literal["dataset", "imagenet"] = "dataset"
    device_capable: bool = True

    def input_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The (H, W) the model sees for stored images of ``image_size``."""
        return (self.resize, self.resize) if self.resize else tuple(image_size)

    def padding_for(self, image_size: tuple[int, int]) -> int:
        """The training crop padding for stored images of ``image_size``."""
        if self.crop_padding is None:
            return max(1, min(image_size) // 8)
        return self.crop_padding

    def train_transform(self, image_size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Per-sample torchvision transforms (uint8 ``(C, H, W)`` in and out) for training, or
        None when there is nothing to do per sample."""
        ops: list[Any] = []
        if self.random_resized_crop:
            ops.append(v2.RandomResizedCrop(self.resize or tuple(image_size), antialias=True))
        elif self.padding_for(image_size):
            ops.append(v2.RandomCrop(tuple(image_size), padding=self.padding_for(image_size)))
        if self.hflip:
            ops.append(v2.RandomHorizontalFlip(0.5))
        if self.resize and not self.random_resized_crop:
            ops += [v2.Resize(self.resize, antialias=True), v2.CenterCrop(self.resize)]
        return v2.Compose(ops) if ops else None

    def eval_transform(self, image_size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Per-sample torchvision transforms (uint8 in and out) for evaluation, or None."""
        if not self.resize:
            return None
        return v2.Compose([v2.Resize(self.resize, antialias=True), v2.CenterCrop(self.resize)])


PRESETS: Registry[Preset] = Registry("preset")
for _preset in (
    Preset("none", "normalise only"),
    Preset("mnist", "normalise only (digits are not flip-symmetric)"),
    Preset("fashion", "RandomCrop(28, padding=2) + horizontal flip + normalise", 2, True),
    Preset("cifar", "RandomCrop(32, padding=4) + horizontal flip + normalise", 4, True),
    Preset(
        "small", "small images: RandomCrop(size, padding=size/8) + horizontal flip + normalise", None, True
    ),
    Preset(
        "photo",
        "photos at their stored size: train RandomResizedCrop + flip (device path: crop with "
        "padding size/8 + flip); normalise with the data's statistics",
        crop_padding=None,
        hflip=True,
        random_resized_crop=True,
    ),
    Preset(
        "imagenet",
        "ImageNet-pretrained: train RandomResizedCrop(224) + flip (device path: crop with "
        "padding + flip + resize to 224); eval Resize(224) + CenterCrop(224); ImageNet mean/std",
        crop_padding=None,
        hflip=True,
        resize=224,
        random_resized_crop=True,
        normalization="imagenet",
    ),
):
    PRESETS.register(_preset.name, _preset)


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the registered presets matching a glob.

    Example:
        >>> "cifar" in list_presets()
        True
    """
    return PRESETS.list(pattern)


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a :class:`Preset` passes through).

    Raises:
        UnknownNameError: no such preset; the message lists them.

    Example:
        >>> get_preset("cifar").crop_padding
        4
    """
    return name if isinstance(name, Preset) else PRESETS.get(name)


def weights_input_size(weights_meta: Mapping[str, Any] | None) -> int | None:
    """The square input size a model's weights want (``input_size`` may be 224, (224, 224) or
    (3, 224, 224)), or None.

    Example:
        >>> weights_input_size({"input_size": (3, 224, 224)}), weights_input_size(None)
        (224, None)
    """
    if not weights_meta or weights_meta.get("input_size") is None:
        return None
    size = weights_meta["input_size"]
    if isinstance(size, (list, tuple)):
        if not size:
            return None
        size = size[-1]
    return int(size)


def preset_for_size(image_size: tuple[int, int]) -> str:
    """The default recipe for images of your own: ``"photo"`` from 64 pixels, else ``"small"``.

    Example:
        >>> preset_for_size((224, 224)), preset_for_size((40, 40))
        ('photo', 'small')
    """
    return "photo" if min(image_size) >= 64 else "small"


def resolve_preset(
    preset: str | Preset,
    *,
    weights_meta: Mapping[str, Any] | None,
    default: str | None,
    in_channels: int,
    image_size: tuple[int, int],
) -> Preset:
    """Turn ``preset`` (a name, a :class:`Preset` or ``"auto"``) into a :class:`Preset`.

    Args:
        preset: ``"auto"`` or a registered name or a Preset.
        weights_meta: the model's weight metadata (``input_size``, ``mean``, ``std``) or None.
        default: the dataset's own recipe name, if it has one.
        in_channels: channels of the stored images.
        image_size: (H, W) of the stored images.

    Returns:
        The preset to use.

    Raises:
        UnknownNameError: an unknown preset name.

    Example:
        >>> resolve_preset("auto", weights_meta={"input_size": (3, 224, 224)}, default="cifar",
        ...                in_channels=3, image_size=(32, 32)).name
        'imagenet'
    """
    if preset != "auto":
        return get_preset(preset)
    if weights_input_size(weights_meta) == 224:
        chosen, why = "imagenet", "the weights want 224x224 input"
    elif default is not None:
        chosen, why = default, "the dataset's own recipe"
    elif in_channels == 3 and tuple(image_size) == (32, 32):
        chosen, why = "cifar", "32x32 colour images"
    elif in_channels == 1 and tuple(image_size) == (28, 28):
        chosen, why = "mnist", "28x28 grayscale images"
    else:
        chosen, why = (
            "none",
            f"no recipe known for {in_channels}x{image_size[0]}x{image_size[1]} images",
        )
    log.info("preset='auto' chose %r (%s)", chosen, why)
    return PRESETS.get(chosen)


def normalization_stats(
    preset: Preset,
    *,
    dataset_stats: tuple[tuple[float, ...], tuple[float, ...]],
    weights_meta: Mapping[str, Any] | None,
    in_channels: int,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) that normalise inputs under ``preset``.

    ``"dataset"`` presets use the training-split statistics. ``"imagenet"`` presets use the
    weights' ``mean``/``std`` (ImageNet's when absent); for 1-channel data the three values are
    averaged, as for a model whose first convolution was summed to one channel.

    Raises:
        ConfigError: the weights' statistics do not have 1 or 3 values.

    Example:
        >>> normalization_stats(get_preset("imagenet"), dataset_stats=((0.3,), (0.2,)),
        ...                     weights_meta=None, in_channels=3)[0]
        (0.485, 0.456, 0.406)
    """
    if preset.normalization == "dataset":
        return dataset_stats
    mean = tuple(float(v) for v in (weights_meta or {}).get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in (weights_meta or {}).get("std", IMAGENET_STD))
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ConfigError(f"weights_meta mean/std must have 1 or 3 values each; got {mean}, {std}.")
    if len(mean) == in_channels:
        return mean, std
    if in_channels == 1:
        return (sum(mean) / 3,), (sum(std) / 3,)
    return mean * 3, std * 3
