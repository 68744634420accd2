"""Predict classes of new images with a PyTorch model: :func:`predict_torch`.

:func:`finetune_kit.inference.predict` calls it for every model that is not an ONNX file.
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
    >>> out = predict_torch(net, torch.zeros(4, 1, 16, 16, dtype=torch.uint8), meta=meta, top_k=2)
    >>> out.probabilities.shape, len(out.names), len(out.top()[0])
    (torch.Size([4, 3]), 4, 2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
from finetune_kit.imaging import check_image_files
from finetune_kit.inference.load import LoadedModel, load_model
from finetune_kit.inference.predictions import Predictions
from finetune_kit.runtime import eval_forward, resolve_device
from finetune_kit.storage.metadata import check_data_meta
from finetune_kit.storage.paths import user_path

__all__ = ["predict_torch"]

META_KEYS = ("class_names", "in_channels", "image_size", "input_size", "mean", "std")
ImageInput = str | Path | Sequence[str | Path] | torch.Tensor | Dataset


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
    check_files(paths)
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


def check_files(paths: Sequence[str | Path]) -> None:
    """Fail before any work when an image path is malformed or its file is missing."""
    check_image_files([user_path(path, "image") for path in paths])


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
def predict_torch(
    model_or_path: nn.Module | LoadedModel | str | Path,
    images: ImageInput,
    *,
    meta: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    top_k: int = 5,
    batch_size: int = 256,
) -> Predictions:
    """:func:`finetune_kit.inference.predict` with a PyTorch model (its arguments and errors).

    Args:
        model_or_path: a model (with ``meta``), a :class:`~finetune_kit.inference.load.LoadedModel`,
            or a path that :func:`~finetune_kit.inference.load.load_model` reads.
        images: file paths, a uint8 tensor ``(N, C, H, W)`` / ``(C, H, W)``, or a dataset split.
        meta: the training data's ``DataBundle.meta()``; required with a bare model.
        device: where to run; None: where the model is (a path loads to the CPU).
        top_k: classes shown per image by ``top()`` / ``table()``.
        batch_size: images per forward pass (and files decoded at a time).

    Returns:
        :class:`~finetune_kit.inference.predictions.Predictions` holding CPU tensors.

    Example:
        >>> from finetune_kit.models import create_model
        >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [16, 16],
        ...         "input_size": [16, 16], "mean": [0.5], "std": [0.25]}
        >>> net = create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> images = torch.randint(0, 256, (3, 1, 20, 20), dtype=torch.uint8)  # resized to 16
        >>> out = predict_torch(net, images, meta=meta)
        >>> out.sources, out.names == [meta["class_names"][i] for i in out.indices]
        (['tensor[0]', 'tensor[1]', 'tensor[2]'], True)
        >>> torch.allclose(out.probabilities.sum(dim=1), torch.ones(3))
        True
    """
    paths = _paths(images)
    if paths is not None:  # a missing file fails before the model is loaded
        check_files(paths)
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
