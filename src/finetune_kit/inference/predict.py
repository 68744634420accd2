"""Predict classes of new images with a trained model: :func:`predict` and :class:`Predictions`.

Inputs are preprocessed exactly as the model's evaluation data was: files are decoded with
:func:`~finetune_kit.data.load_images` (converted to the training channels and resized to the
stored image size), tensors are resized the same way, and every batch goes through
:func:`~finetune_kit.data.eval_transform_from_meta` built from the training data's
``DataBundle.meta()`` (normalisation, and the resize to the model's input size when the preset
had one). Nothing of the training dataset is needed.

``finetune-kit predict --checkpoint CKPT IMAGE... [--top-k 3]`` prints ``predict(CKPT, IMAGES).table()``.

Example:
    >>> import torch
    >>> from finetune_kit.models import create_model
    >>> meta = {"class_names": ["a", "b", "c"], "in_channels": 1, "image_size": [16, 16],
    ...         "input_size": [16, 16], "mean": [0.5], "std": [0.25]}
    >>> net = create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    >>> out = predict(net, torch.zeros(4, 1, 16, 16, dtype=torch.uint8), meta=meta, top_k=2)
    >>> out.probabilities.shape, len(out.names), len(out.top()[0])
    (torch.Size([4, 3]), 4, 2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from finetune_kit.data import DataBundle, ImageTensorDataset, eval_transform_from_meta, load_images
from finetune_kit.errors import ConfigError, DataError, DeviceError, ShapeError
from finetune_kit.inference.load import LoadedModel, load_model
from finetune_kit.runtime import eval_forward, resolve_device
from finetune_kit.storage.metadata import check_data_meta
from finetune_kit.storage.paths import user_path

__all__ = ["Predictions", "predict"]

META_KEYS = ("class_names", "in_channels", "image_size", "input_size", "mean", "std")
ImageInput = str | Path | Sequence[str | Path] | torch.Tensor | Dataset


@dataclass(frozen=True, eq=False)
class Predictions:
    """Class predictions for ``N`` images (all tensors on the CPU).

    Attributes:
        logits: ``(N, C)`` float32 model outputs.
        probabilities: ``(N, C)`` softmax of the logits; each row sums to 1.
        indices: ``(N,)`` predicted class index (argmax).
        class_names: the ``C`` class names in label order.
        sources: ``N`` labels of the inputs: file paths, ``tensor[i]`` or ``dataset[i]``.
        targets: ``(N,)`` true labels when the input was a dataset, else None.
        top_k: how many classes :meth:`top` and :meth:`table` show by default.

    Example:
        >>> p = Predictions(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.88, 0.12]]),
        ...                 torch.tensor([0]), ["cat", "dog"], ["a.png"])
        >>> p.names, p.top(1)
        (['cat'], [[('cat', 0.8799999952316284)]])
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    indices: torch.Tensor
    class_names: list[str]
    sources: list[str]
    targets: torch.Tensor | None = None
    top_k: int = 5

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def names(self) -> list[str]:
        """The predicted class name of each image."""
        return [self.class_names[int(i)] for i in self.indices]

    def _k(self, k: int | None) -> int:
        k = self.top_k if k is None else k
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"top k must be an integer >= 1, got {k!r}.")
        return min(k, len(self.class_names))

    def top(self, k: int | None = None) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each image as ``(name, probability)``, best first.

        Args:
            k: how many (default ``top_k``; at most the number of classes).

        Returns:
            One list per image.

        Raises:
            ConfigError: ``k`` < 1.

        Example:
            >>> p = Predictions(torch.zeros(1, 3), torch.tensor([[0.2, 0.5, 0.3]]),
            ...                 torch.tensor([1]), ["a", "b", "c"], ["x"])
            >>> [name for name, _ in p.top(2)[0]]
            ['b', 'c']
        """
        values, indices = self.probabilities.topk(self._k(k), dim=1)
        return [
            [(self.class_names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True)]
            for vs, ids in zip(values, indices, strict=True)
        ]

    def table(self, k: int | None = None) -> str:
        """A text table: one row per image, its ``k`` most probable classes with probabilities.

        Args:
            k: classes per image (default ``top_k``).

        Returns:
            The table (no trailing newline).

        Example:
            >>> p = Predictions(torch.zeros(1, 2), torch.tensor([[0.25, 0.75]]),
            ...                 torch.tensor([1]), ["cat", "dog"], ["a.png"])
            >>> print(p.table())
            image  top-1         top-2
            a.png  dog (0.7500)  cat (0.2500)
        """
        top = self.top(k)
        header = ["image"] + [f"top-{i + 1}" for i in range(len(top[0]) if top else 0)]
        rows = [
            [src] + [f"{name} ({p:.4f})" for name, p in classes]
            for src, classes in zip(self.sources, top, strict=True)
        ]
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]
        return "\n".join(lines)


# ------------------------------------------------------------------ model
def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        raise ConfigError(
            "predict(model, ...) needs meta=: the training data's DataBundle.meta() (for "
            "preprocessing and class names). Pass meta=data.meta(), or predict from a path / "
            "load_model(...) result, which carries it."
        )
    if not isinstance(meta, Mapping):
        raise ConfigError(f"meta must be a dict (DataBundle.meta()), got {type(meta).__name__}.")
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise ConfigError(
            f"meta lacks {missing}; pass the full DataBundle.meta() of the data the model was trained on."
        )
    names = meta["class_names"]
    count = len(names) if isinstance(names, (list, tuple)) else names  # the model's outputs decide
    check_data_meta(
        {"name": "", **meta, "num_classes": count},
        "predict",
        error=ConfigError,
        entry="meta",
        fix="Pass the DataBundle.meta() of the data the model was trained on.",
    )
    return dict(meta)


def _resolve_model(
    model_or_path: nn.Module | LoadedModel | str | Path,
    meta: Mapping[str, Any] | None,
    device: str | torch.device | None,
) -> tuple[nn.Module, dict[str, Any], torch.device]:
    if isinstance(model_or_path, (str, Path)):
        model_or_path = load_model(model_or_path, device=device if device is not None else "cpu")
    if isinstance(model_or_path, LoadedModel):
        model, meta = model_or_path.model, meta if meta is not None else model_or_path.meta
    elif isinstance(model_or_path, nn.Module):
        model = model_or_path
    else:
        raise ConfigError(
            f"predict expects a model, a LoadedModel or a path to an export, "
            f"checkpoint or run directory; got {type(model_or_path).__name__}."
        )
    current = _model_device(model)
    wanted = current if device is None else resolve_device(str(device))
    if wanted != current:
        raise DeviceError(
            f"The model is on {current} but device={str(device)!r} was asked for. "
            f"Pass device={str(current)!r}, or move the model with "
            f"model.to({str(wanted)!r}) first."
        )
    return model, _check_meta(meta), wanted


# ----------------------------------------------------------------- inputs
def _check_files(paths: Sequence[str | Path]) -> None:
    """Fail before any work when an image file is missing."""
    if not paths:
        raise DataError("No images were given; pass at least one PNG or JPEG file.")
    for path in paths:
        if not user_path(path, "image").is_file():
            raise DataError(f"Image file {path} does not exist (or is not a file). Check the path.")


def _size(meta: Mapping[str, Any]) -> tuple[int, int]:
    h, w = meta["image_size"]
    return int(h), int(w)


def _fit(batch: torch.Tensor, meta: Mapping[str, Any], where: str) -> torch.Tensor:
    """Check a uint8 ``(N, C, H, W)`` batch's dtype and channels; resize to the stored size."""
    if batch.dtype != torch.uint8:
        raise DataError(
            f"{where} holds {batch.dtype} images; predict expects uint8 in [0, 255]. "
            "Convert floats in [0, 1] with (x * 255).round().to(torch.uint8)."
        )
    channels = int(meta["in_channels"])
    if batch.shape[1] != channels:
        raise ShapeError(
            f"{where} has {batch.shape[1]}-channel images but the model was trained "
            f"on {channels}-channel images; convert them first."
        )
    size = _size(meta)
    if tuple(batch.shape[-2:]) != size:
        batch = TF.resize(batch, list(size), antialias=True)
    return batch


def _tensor_batches(
    images: torch.Tensor, meta: Mapping[str, Any], batch_size: int
) -> tuple[Iterator[torch.Tensor], list[str]]:
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ShapeError(
            f"Image tensors must be (C, H, W) or (N, C, H, W) with N >= 1; got shape {tuple(images.shape)}."
        )
    chunks = (
        _fit(images[i : i + batch_size], meta, "the image tensor")
        for i in range(0, images.shape[0], batch_size)
    )
    return chunks, [f"tensor[{i}]" for i in range(images.shape[0])]


def _file_batches(
    paths: Sequence[str | Path], meta: Mapping[str, Any], batch_size: int
) -> tuple[Iterator[torch.Tensor], list[str]]:
    _check_files(paths)
    chunks = (
        load_images(paths[i : i + batch_size], in_channels=int(meta["in_channels"]), image_size=_size(meta))
        for i in range(0, len(paths), batch_size)
    )
    return chunks, [str(p) for p in paths]


def _item_image(image: Any, meta: Mapping[str, Any], index: int) -> torch.Tensor:
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("L" if int(meta["in_channels"]) == 1 else "RGB"))
        image = torch.from_numpy(array.reshape(*array.shape[:2], -1).transpose(2, 0, 1).copy())
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise DataError(
            f"dataset[{index}] holds a {type(image).__name__}; predict expects each "
            "item to be (image, label) with a uint8 (C, H, W) tensor or a PIL image."
        )
    return _fit(image.unsqueeze(0), meta, f"dataset[{index}]")[0]


def _dataset_batches(
    dataset: Dataset, meta: Mapping[str, Any], batch_size: int
) -> tuple[Iterator[torch.Tensor], list[str], list[int] | torch.Tensor]:
    """Batches of a split; its labels (a list that fills as the batches are read)."""
    n = len(dataset)
    if n == 0:
        raise DataError("The dataset is empty; there is nothing to predict.")
    sources = [f"dataset[{i}]" for i in range(n)]
    if isinstance(dataset, ImageTensorDataset):
        chunks, _ = _tensor_batches(dataset.images, meta, batch_size)
        return chunks, sources, dataset.targets.clone()
    labels: list[int] = []

    def read(index: int) -> torch.Tensor:
        image, label = dataset[index]
        labels.append(int(label))
        return _item_image(image, meta, index)

    chunks = (
        torch.stack([read(i) for i in range(start, min(start + batch_size, n))])
        for start in range(0, n, batch_size)
    )
    return chunks, sources, labels


def _paths(images: ImageInput) -> list[str | Path] | None:
    """The file paths when ``images`` is one path or a list/tuple of paths, else None."""
    if isinstance(images, (str, Path)):
        return [images]
    if isinstance(images, (list, tuple)) and all(isinstance(p, (str, Path)) for p in images):
        return list(images)
    return None


def _batches(
    images: ImageInput, meta: Mapping[str, Any], batch_size: int
) -> tuple[Iterator[torch.Tensor], list[str], list[int] | torch.Tensor | None]:
    """Uint8 CPU batches at the stored image size, their source labels, and dataset targets."""
    paths = _paths(images)
    if paths is not None:
        return (*_file_batches(paths, meta, batch_size), None)
    if isinstance(images, torch.Tensor):
        return (*_tensor_batches(images, meta, batch_size), None)
    if isinstance(images, DataBundle):
        raise ConfigError("predict got a whole DataBundle; pass one split, e.g. data.test.")
    if isinstance(images, Dataset):
        return _dataset_batches(images, meta, batch_size)
    raise ConfigError(
        f"predict cannot read images from a {type(images).__name__}: pass image "
        "file paths, a uint8 tensor (N, C, H, W) or (C, H, W), or a dataset split."
    )


# ---------------------------------------------------------------- predict
def predict(
    model_or_path: nn.Module | LoadedModel | str | Path,
    images: ImageInput,
    *,
    meta: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    top_k: int = 5,
    batch_size: int = 256,
) -> Predictions:
    """Predict the class of each image, preprocessed as the model's evaluation data was.

    Args:
        model_or_path: a model (with ``meta``), a :class:`~finetune_kit.inference.load.LoadedModel`,
            or a path that :func:`~finetune_kit.inference.load.load_model` reads (an export, a
            ``.ckpt`` checkpoint or a run directory).
        images: PNG/JPEG file paths (or one path); a uint8 tensor ``(N, C, H, W)`` or
            ``(C, H, W)``; or a dataset split yielding ``(image, label)`` (e.g. ``data.test``),
            whose labels end up in ``Predictions.targets``. Images are resized to the stored
            image size ``meta["image_size"]``; files are converted to the training channels.
        meta: the training data's ``DataBundle.meta()``; required with a bare model, and
            overrides a LoadedModel's own.
        device: where to run; None: where the model is (a path loads to the CPU). A model on
            another device is not moved behind your back: that is an error.
        top_k: classes shown per image by ``top()`` / ``table()`` (at most the class count).
        batch_size: images per forward pass (and files decoded at a time).

    Returns:
        :class:`Predictions`.

    Raises:
        DataError: a missing or unreadable image file (named), non-uint8 tensors, an empty input.
        ShapeError: images with the wrong channel count, or a model whose number of outputs
            differs from the number of class names.
        ConfigError: a bad ``top_k``/``batch_size``, missing ``meta``, or an unsupported input.
        DeviceError: ``device`` differs from the model's device, or is not available.
        CheckpointError: the path holds nothing loadable (see ``load_model``).

    Example:
        >>> from finetune_kit.models import create_model
        >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [16, 16],
        ...         "input_size": [16, 16], "mean": [0.5], "std": [0.25]}
        >>> net = create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> images = torch.randint(0, 256, (3, 1, 20, 20), dtype=torch.uint8)  # resized to 16
        >>> out = predict(net, images, meta=meta)
        >>> out.sources, out.names == [meta["class_names"][i] for i in out.indices]
        (['tensor[0]', 'tensor[1]', 'tensor[2]'], True)
        >>> torch.allclose(out.probabilities.sum(dim=1), torch.ones(3))
        True
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}.")
    paths = _paths(images)
    if paths is not None:  # a missing file fails before the model is loaded
        _check_files(paths)
    model, meta, device = _resolve_model(model_or_path, meta, device)
    chunks, sources, targets = _batches(images, meta, batch_size)
    logits = _forward(model, chunks, eval_transform_from_meta(meta, device=device), device)
    names = [str(n) for n in meta["class_names"]]
    if logits.shape[1] != len(names):
        raise ShapeError(
            f"The model has {logits.shape[1]} outputs but meta names {len(names)} "
            "classes; pass the meta of the data this model was trained on."
        )
    if isinstance(targets, list):
        targets = torch.tensor(targets, dtype=torch.int64)
    return Predictions(
        logits=logits,
        probabilities=logits.softmax(dim=1),
        indices=logits.argmax(dim=1),
        class_names=names,
        sources=sources,
        targets=targets,
        top_k=top_k,
    )


def _forward(
    model: nn.Module, chunks: Iterator[torch.Tensor], transform: Any, device: torch.device
) -> torch.Tensor:
    """Logits of every batch, in float32 on the CPU, with the model in eval mode."""
    batches = (transform(chunk.to(device)) for chunk in chunks)
    return torch.cat([logits.cpu() for logits, _ in eval_forward(model, batches)])
