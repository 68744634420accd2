"""In-memory datasets: ``tensors`` (arrays you already hold) and ``fake`` (random smoke data).

``tensors`` accepts numpy arrays or torch tensors, NCHW or NHWC (or NHW for grayscale), uint8 or
floats in [0, 1], and converts them to :class:`ImageTensorDataset` splits after checking them.

``fake`` makes deterministic random images whose classes are learnable (each class has its own
pattern plus noise), for smoke runs and tests. Its class names are ``fake_0``, ``fake_1``, ...
so nobody mistakes its results for real data.

Example:
    >>> import numpy as np
    >>> from finetune_kit.data import create_datasets
    >>> x = np.zeros((20, 8, 8, 3), np.uint8)              # NHWC
    >>> y = np.arange(20) % 4
    >>> data = create_datasets("tensors", train=(x, y), test=(x[:4], y[:4]), val_fraction=0)
    >>> data.in_channels, data.image_size, data.num_classes
    (3, (8, 8), 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from finetune_kit.data.bundle import DatasetParts
from finetune_kit.data.images import check_image_size
from finetune_kit.data.registry import register_dataset
from finetune_kit.data.sampling import make_generator
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import ConfigError, DataError

__all__ = ["as_image_tensor"]


def as_image_tensor(images: Any, *, layout: str = "auto", what: str = "images") -> torch.Tensor:
    """Convert user images to ``(N, C, H, W)`` uint8.

    Args:
        images: numpy array or tensor, ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` with
            ``C`` in {1, 3}; uint8, or float in [0, 1] (scaled by 255 and rounded).
        layout: ``"auto"`` (channels where the size is 1 or 3, NCHW first), ``"nchw"``, ``"nhwc"``.
        what: the name used in error messages.

    Returns:
        A uint8 tensor ``(N, C, H, W)``.

    Raises:
        DataError: an unsupported shape, dtype or value range.

    Example:
        >>> as_image_tensor(np.ones((2, 5, 5), np.float32)).shape
        torch.Size([2, 1, 5, 5])
    """
    x = _numbers(images, what)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise DataError(
            f"{what} must be (N, H, W), (N, C, H, W) or (N, H, W, C); got shape {tuple(x.shape)}."
        )
    if layout == "auto":
        layout = "nchw" if x.shape[1] in (1, 3) else "nhwc" if x.shape[3] in (1, 3) else "?"
    if layout == "nhwc":
        x = x.permute(0, 3, 1, 2)
    elif layout != "nchw":
        raise DataError(
            f"{what} of shape {tuple(x.shape)}: cannot tell the channel axis (1 or 3 channels "
            "expected at axis 1 or 3). Pass layout='nchw' or layout='nhwc'."
        )
    if x.dtype.is_floating_point:
        if not bool(torch.isfinite(x).all()):
            raise DataError(
                f"{what} contain NaN or inf values; every pixel must be a finite number in "
                "[0, 1] (or uint8 0..255). Clean the array (e.g. numpy.nan_to_num) first."
            )
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise DataError(
                f"{what} are floats in [{float(x.min()):.3g}, {float(x.max()):.3g}]; "
                "expected [0, 1] (or uint8 0..255). Divide by 255 or pass uint8 images."
            )
        x = (x.to(torch.float64) * 255).round()
    elif x.dtype != torch.uint8 and x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
        raise DataError(f"{what} have integer values outside 0..255 ({x.dtype}); expected uint8.")
    return x.to(torch.uint8).contiguous()


def _numbers(values: Any, what: str) -> torch.Tensor:
    """``values`` as a real-valued tensor (no complex numbers, strings or Python objects)."""
    try:
        x = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise DataError(
            f"{what} cannot be read as an array of numbers ({type(values).__name__}: "
            f"{str(exc).splitlines()[0][:80]}). Pass a numpy array or tensor of numbers."
        ) from None
    if x.is_complex():
        raise DataError(
            f"{what} hold complex numbers ({x.dtype}); images and labels must be real. Take "
            "the magnitude (numpy.abs) or the real part first."
        )
    return x


def _labels(labels: Any, what: str) -> torch.Tensor:
    y = _numbers(labels, what)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataError(
            f"{what} must be a 1-D array of integer class indices; got {y.dtype} {tuple(y.shape)}."
        )
    return y.to(torch.int64)


def _pair(pair: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"{what} must be a pair (images, labels); got {type(pair).__name__}.")
    return pair[0], pair[1]


@register_dataset("tensors")
def tensors(
    *,
    train: Any,
    test: Any = None,
    class_names: Sequence[str] | None = None,
    layout: str = "auto",
    root: Any = None,
    download: bool = True,
) -> DatasetParts:
    """Images and labels you already hold, as a dataset.

    Args:
        train: ``(images, labels)`` for training.
        test: ``(images, labels)`` for testing, or None.
        class_names: names in label order; default ``"0"``, ``"1"``, ... up to the largest label.
        layout: see :func:`as_image_tensor`.
        root: unused (accepted so every dataset takes it).
        download: unused.
    """
    splits = {}
    for what, pair in (("train", train), ("test", test)):
        if pair is not None:
            images, labels = _pair(pair, what)
            splits[what] = (
                as_image_tensor(images, layout=layout, what=f"{what} images"),
                _labels(labels, f"{what} labels"),
            )
    for what, (x, _) in splits.items():
        if len(x) == 0:
            raise DataError(
                f"The {what} tensors hold no images; give at least one image per split "
                "(or test=None for no test set)."
            )
    if class_names is None:
        top = max(int(y.max()) for _, y in splits.values())
        class_names = [str(i) for i in range(top + 1)]
    made = {
        k: ImageTensorDataset(x, y, class_names, source=f"the {k} tensors") for k, (x, y) in splits.items()
    }
    return DatasetParts(
        train=made["train"], test=made.get("test"), class_names=list(class_names), source="tensors"
    )


def _fake_split(
    n: int, prototypes: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    num_classes = prototypes.shape[0]
    targets = torch.arange(n) % num_classes
    targets = targets[torch.randperm(n, generator=generator)]
    noise = torch.randn((n, *prototypes.shape[1:]), generator=generator) * 40
    images = (prototypes[targets] + noise).round().clamp(0, 255).to(torch.uint8)
    return images, targets


_FAKE_MAX = 10_000_000  # images or classes of random smoke data
_FAKE_MAX_GIB = 4


@register_dataset("fake")
def fake(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 32,
    train_size: int = 1000,
    test_size: int = 200,
    seed: int = 0,
    root: Any = None,
    download: bool = True,
) -> DatasetParts:
    """Deterministic random images for smoke runs -- not real data (classes ``fake_0``, ...).

    Each class is a random smooth pattern plus Gaussian noise, so a model can learn it.

    Args:
        num_classes: number of classes.
        in_channels: 1 or 3.
        image_size: side length or (H, W).
        train_size: training images (before the validation split).
        test_size: test images.
        seed: seeds the images; ``create_datasets`` passes its own ``seed`` here, so the same
            seed gives the same data (and the same validation split).
        root: unused.
        download: unused.
    """
    h, w = check_image_size(image_size)
    counts = {"num_classes": num_classes, "train_size": train_size, "test_size": test_size}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _FAKE_MAX:
            raise ConfigError(f"fake dataset: {key}={value!r}: expected an integer in [1, {_FAKE_MAX:,}].")
    if in_channels not in (1, 3) or isinstance(in_channels, bool):
        raise ConfigError(f"fake dataset: in_channels={in_channels!r}: expected 1 or 3.")
    gib = (train_size + test_size) * in_channels * h * w / 2**30
    if gib > _FAKE_MAX_GIB:
        raise ConfigError(
            f"fake dataset: {train_size + test_size:,} images of {in_channels}x{h}x{w} would take "
            f"{gib:,.0f} GiB of memory (at most {_FAKE_MAX_GIB} GiB); use fewer or smaller images."
        )
    generator = make_generator("fake", seed)
    coarse = torch.rand((num_classes, in_channels, 4, 4), generator=generator) * 255
    prototypes = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    names = [f"fake_{i}" for i in range(num_classes)]
    train = ImageTensorDataset(*_fake_split(train_size, prototypes, generator), names, source="fake (train)")
    test = ImageTensorDataset(*_fake_split(test_size, prototypes, generator), names, source="fake (test)")
    return DatasetParts(train=train, test=test, class_names=names, source="fake random data")
