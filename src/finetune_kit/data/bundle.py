"""DataBundle: a dataset's splits with everything a model and a checkpoint need to know.

A dataset builder returns :class:`DatasetParts` (the splits as stored); ``create_datasets`` turns
them into a :class:`DataBundle`: the validation split cut from the training set, the preset
chosen, the normalisation statistics computed. ``DataBundle.meta()`` is the JSON-safe summary
stored in checkpoints, from which prediction rebuilds its preprocessing without the dataset.

Example:
    >>> from finetune_kit.data import create_datasets
    >>> data = create_datasets("fake", train_size=50, test_size=10, val_fraction=0.2)
    >>> len(data.train), len(data.val), len(data.test), data.num_classes
    (40, 10, 10, 10)
    >>> data.meta()["input_size"]
    [32, 32]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from finetune_kit.data.presets import Preset
from finetune_kit.data.splits import save_split
from finetune_kit.errors import ShapeError
from finetune_kit.storage.atomic import atomic_write_text

__all__ = ["DataBundle", "DatasetParts", "check_compatible"]


@dataclass
class DatasetParts:
    """What a dataset builder returns: the splits as stored, before the validation split.

    Args:
        train: the full training set (usually an :class:`ImageTensorDataset`).
        test: the test set, or None when the dataset has none.
        class_names: one name per class, in label order.
        val: a validation set the dataset defines itself (e.g. an image folder's ``val/``);
            None to cut one from ``train``.
        default_preset: the dataset's own training recipe for ``preset="auto"``.
        source: where the files came from, for logs.

    Example:
        >>> import torch
        >>> from finetune_kit.data import ImageTensorDataset
        >>> ds = ImageTensorDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
        ...                         torch.tensor([0, 1]), ["a", "b"])
        >>> DatasetParts(train=ds, test=ds, class_names=["a", "b"]).val is None
        True
    """

    train: Dataset
    test: Dataset | None
    class_names: list[str]
    val: Dataset | None = None
    default_preset: str | None = None
    source: str = ""


@dataclass(repr=False)
class DataBundle:
    """A dataset ready for training: splits, shapes, class names, statistics and preset.

    Built by :func:`~finetune_kit.data.create_datasets`; see its docs for the arguments.

    Attributes:
        name: the dataset's registry name.
        train: the training split (validation images removed).
        val: the validation split, or None when ``val_fraction == 0``.
        test: the test split (None only for user datasets without one).
        num_classes: number of classes.
        in_channels: channels of the stored images (1 or 3).
        image_size: stored (H, W).
        class_names: class names in label order.
        mean: per-channel mean used for normalisation (of ``x / 255``).
        std: per-channel standard deviation used for normalisation.
        preset: the transform preset.
        train_indices: indices of ``train`` in the full training set.
        val_indices: indices of ``val`` in the full training set (empty when there is no
            validation split; None when the dataset brought its own validation set).
        dataset_mean: mean of the training split (equal to ``mean`` unless the preset
            normalises with the weights' statistics).
        dataset_std: standard deviation of the training split.
        seed: the split seed.
        val_fraction: the validation fraction asked for.
        n_train_total: size of the full training set before the split.
        fingerprint: hash of the full training labels (identifies the dataset in split files).
        source: where the files came from.
        origin: how to build this bundle again: ``dataset``, ``root`` (absolute), ``download``,
            ``channels``, ``options`` (None when they cannot be stored, e.g. in-memory tensors)
            and the ``preset`` asked for.
        content: fingerprints of the full training set and of the test set (images and labels).

    Example:
        >>> from finetune_kit.data import create_datasets
        >>> b = create_datasets("fake", train_size=20, test_size=4, in_channels=1, image_size=8)
        >>> b.in_channels, b.image_size, b.preset.name
        (1, (8, 8), 'none')
    """

    name: str
    train: Dataset
    val: Dataset | None
    test: Dataset | None
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preset: Preset
    train_indices: torch.Tensor
    val_indices: torch.Tensor | None
    dataset_mean: tuple[float, ...] = ()
    dataset_std: tuple[float, ...] = ()
    seed: int = 0
    val_fraction: float = 0.0
    n_train_total: int = 0
    fingerprint: str = ""
    source: str = ""
    origin: dict[str, Any] = field(default_factory=dict)
    content: dict[str, str] = field(default_factory=dict)
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = " / ".join(
            f"{len(split)} {what}"
            for what, split in (("train", self.train), ("val", self.val), ("test", self.test))
            if split is not None
        )
        names = self.class_names if len(self.class_names) <= 6 else [*self.class_names[:5], "..."]
        return (
            f"DataBundle({self.name!r}: {sizes} images of {self.in_channels}x{self.image_size[0]}x"
            f"{self.image_size[1]}, {self.num_classes} classes {names}, preset {self.preset.name!r})"
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """The (H, W) the model sees after the preset's resize."""
        return self.preset.input_size(self.image_size)

    def meta(self) -> dict[str, Any]:
        """A JSON-safe summary stored in checkpoints; enough to rebuild evaluation preprocessing.

        Returns:
            ``name``, ``num_classes``, ``in_channels``, ``image_size``, ``input_size``,
            ``class_names``, ``mean``, ``std``, ``preset``, ``dataset_mean``, ``dataset_std``,
            and the content fingerprints ``train_fingerprint`` / ``test_fingerprint``.
        """
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "input_size": list(self.input_size),
            "class_names": list(self.class_names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "preset": self.preset.name,
            "dataset_mean": [float(v) for v in self.dataset_mean],
            "dataset_std": [float(v) for v in self.dataset_std],
            "train_fingerprint": self.content.get("train", ""),
            "test_fingerprint": self.content.get("test", ""),
            **self.extra_meta,
        }

    def save_class_index(self, path: str | Path) -> Path:
        """Write the class index map (``{"0": "cat", "1": "dog", ...}``) as JSON.

        Args:
            path: destination, e.g. ``run_dir / "classes.json"``.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({str(i): n for i, n in enumerate(self.class_names)}, indent=1))
        return path

    def save_split(self, path: str | Path) -> Path:
        """Write the train/validation split to JSON so a resumed run reuses it.

        Pass the file back as ``create_datasets(..., split_file=path)``.

        Args:
            path: destination, e.g. ``run_dir / "split.json"``.

        Returns:
            The path written.
        """
        val = self.val_indices
        return save_split(
            path,
            {
                "dataset": self.name,
                "seed": self.seed,
                "val_fraction": self.val_fraction,
                "n_train_total": self.n_train_total,
                "fingerprint": self.fingerprint,
                "train_indices": self.train_indices.tolist(),
                "val_indices": [] if val is None else val.tolist(),
                "own_val_set": val is None,
            },
        )


def check_compatible(
    bundle_or_meta: DataBundle | Mapping[str, Any], *, in_channels: int, num_classes: int
) -> None:
    """Check that a model with ``in_channels`` inputs and ``num_classes`` outputs fits the data.

    Args:
        bundle_or_meta: a :class:`DataBundle` or its ``meta()`` dict.
        in_channels: the model's input channels.
        num_classes: the model's number of outputs.

    Raises:
        ShapeError: a channel or class-count mismatch; the message offers the fixes.

    Example:
        >>> meta = {"name": "fashion_mnist", "in_channels": 1, "num_classes": 10}
        >>> check_compatible(meta, in_channels=1, num_classes=10)
    """
    meta = bundle_or_meta.meta() if isinstance(bundle_or_meta, DataBundle) else bundle_or_meta
    name, channels, classes = meta["name"], int(meta["in_channels"]), int(meta["num_classes"])
    if channels != in_channels:
        kind = "grayscale" if channels == 1 else "RGB"
        convert = "RGB" if in_channels == 3 else "grayscale"
        raise ShapeError(
            f"Dataset {name!r} has {channels}-channel ({kind}) images but the model expects "
            f"{in_channels} channels. Fix it either way: create the model with "
            f"create_model(..., in_channels={channels}) (pretrained filters are adapted), or "
            f"convert the dataset to {convert} with "
            f"create_datasets({name!r}, ..., channels={in_channels})."
        )
    if classes != num_classes:
        raise ShapeError(
            f"Dataset {name!r} has {classes} classes but the model has {num_classes} outputs. "
            f"Create the model with create_model(..., num_classes={classes})."
        )
