"""ImageTensorDataset: a whole split held as one uint8 tensor, validated once.

Every built-in dataset except image folders of mixed sizes keeps its splits in this form:
``images`` (N, C, H, W) uint8 and ``targets`` (N,) int64. Holding the split as one tensor is what
lets the device loader move it to the GPU in one copy and augment whole batches there.

Example:
    >>> import torch
    >>> from finetune_kit.data import ImageTensorDataset
    >>> ds = ImageTensorDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
    ...                         torch.tensor([0, 1, 0, 1]), ["a", "b"])
    >>> len(ds), ds.num_classes, ds.image_size
    (4, 2, (8, 8))
    >>> x, y = ds[1]
    >>> tuple(x.shape), y
    ((1, 8, 8), 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from finetune_kit.errors import ConfigError, DataError

__all__ = ["ImageTensorDataset", "convert_channels"]


class ImageTensorDataset(Dataset):
    """A map-style dataset of uint8 images and int64 labels held in two tensors.

    Args:
        images: ``(N, C, H, W)`` uint8 tensor.
        targets: ``(N,)`` integer tensor of class indices in ``[0, len(class_names))``.
        class_names: one name per class; its length is the number of classes.
        source: where the data came from (a file or folder), named in error messages.

    Raises:
        DataError: wrong dtype or shape, image/label count mismatch, an empty dataset, or a
            label outside ``[0, num_classes)``.

    Example:
        >>> import torch
        >>> ds = ImageTensorDataset(torch.zeros(3, 3, 4, 4, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 2]), ["x", "y", "z"])
        >>> ds.subset(torch.tensor([2, 0])).targets.tolist()
        [2, 0]
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        class_names: Sequence[str],
        *,
        source: str = "the given tensors",
    ) -> None:
        self.source = source
        self.class_names = [str(c) for c in class_names]
        _check_images(images, source)
        targets = _check_targets(targets, images.shape[0], len(self.class_names), source)
        self.images = images
        self.targets = targets

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of ``class_names``)."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Channels per image (1 for grayscale, 3 for RGB)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Stored image height and width."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.targets[index])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageTensorDataset:
        """A new dataset holding the samples at ``indices`` (copied, in that order).

        Args:
            indices: integer indices into this dataset.

        Returns:
            An :class:`ImageTensorDataset` with the same class names.
        """
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageTensorDataset(
            self.images.index_select(0, index),
            self.targets.index_select(0, index),
            self.class_names,
            source=self.source,
        )

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return (
            f"ImageTensorDataset({len(self)} images, {c}x{h}x{w} uint8, "
            f"{self.num_classes} classes, from {self.source})"
        )


def _check_images(images: object, source: str) -> None:
    if not isinstance(images, torch.Tensor):
        raise DataError(f"Images from {source} must be a torch.Tensor, got {type(images).__name__}.")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(
            f"Images from {source} must be a uint8 tensor of shape (N, C, H, W); got "
            f"{images.dtype} with shape {tuple(images.shape)}. Convert floats in [0, 1] with "
            "(x * 255).round().to(torch.uint8) and add a channel axis for grayscale."
        )
    if images.shape[0] == 0:
        raise DataError(f"{source} holds no images: a dataset split needs at least one.")
    if images.shape[1] not in (1, 3):
        raise DataError(
            f"Images from {source} have {images.shape[1]} channels; expected 1 (grayscale) or "
            "3 (RGB). Convert them before building the dataset."
        )


def _check_targets(targets: object, n: int, num_classes: int, source: str) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor) or targets.ndim != 1:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise DataError(f"Labels from {source} must be a 1-D tensor; got {shape}.")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise DataError(f"Labels from {source} must be integers; got {targets.dtype}.")
    if targets.shape[0] != n:
        raise DataError(
            f"{source}: {n} images but {targets.shape[0]} labels. Every image needs exactly one "
            "label; check that the image and label files belong together."
        )
    targets = targets.to(torch.int64)
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"{source}: label {bad} is outside [0, {num_classes}) for {num_classes} classes. "
            "Fix the labels, or pass the full list of class names."
        )
    return targets


def convert_channels(dataset: ImageTensorDataset, channels: int) -> ImageTensorDataset:
    """Return ``dataset`` with its images converted to 1 (grayscale) or 3 (RGB) channels.

    Grayscale -> RGB repeats the channel; RGB -> grayscale uses the ITU-R 601-2 luma weights
    (as PIL's ``convert("L")`` and torchvision's ``rgb_to_grayscale``).

    Args:
        dataset: the dataset to convert.
        channels: 1 or 3.

    Returns:
        The same dataset object when nothing changes, else a new one.

    Raises:
        ConfigError: ``channels`` is not 1 or 3.

    Example:
        >>> import torch
        >>> ds = ImageTensorDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
        ...                         torch.tensor([0, 1]), ["a", "b"])
        >>> convert_channels(ds, 3).in_channels
        3
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels!r} is not supported: use 1 (grayscale) or 3 (RGB).")
    if dataset.in_channels == channels:
        return dataset
    images = dataset.images
    if channels == 3:
        converted = images.expand(-1, 3, -1, -1).contiguous()
    else:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
        luma = (images.to(torch.float32) * weights).sum(dim=1, keepdim=True)
        converted = luma.round_().clamp_(0, 255).to(torch.uint8)
    return ImageTensorDataset(converted, dataset.targets, dataset.class_names, source=dataset.source)
