"""Predict with an exported ONNX model in onnxruntime, with numpy and Pillow only: no PyTorch.

:func:`predict_onnx` preprocesses images as the PyTorch path does
(:mod:`finetune_kit.inference.torch_predict`): files are decoded with
:func:`finetune_kit.imaging.decode_array` (converted to the training channels) and resized to the
stored image size, then ``x / 255``, ``(x - mean) / std``, and, when the model's input size
differs, the shorter side resized to it and centre-cropped. For a graph that normalises itself
(``input_format == "uint8"``) the pixels go in as they are. The result is the same
:class:`~finetune_kit.inference.predictions.Predictions`, holding numpy arrays.

Images already at the stored size are preprocessed with the same float32 operations as the
PyTorch path. A file that must be resized is resized by Pillow, which may differ from
torchvision's resize by one grey level on a few pixels.

Example:
    >>> import tempfile, numpy as np, finetune_kit as fk
    >>> net = fk.create_model("convnet", num_classes=3, in_channels=1)
    >>> meta = {"class_names": ["a", "b", "c"], "in_channels": 1, "image_size": [28, 28],
    ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
    >>> path = fk.export(net, tempfile.mkdtemp() + "/m.onnx", format="onnx", meta=meta)
    >>> out = predict_onnx(path, np.zeros((4, 1, 28, 28), np.uint8), top_k=2)
    >>> out.probabilities.shape, out.sources[0], len(out.top()[0])
    ((4, 3), 'array[0]', 2)
    >>> predict_onnx(path, np.zeros((1, 1, 20, 20), np.uint8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    finetune_kit.errors.ShapeError: The images are 20x20 but the model takes 28x28 ...
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from finetune_kit.errors import ConfigError, DataError, ShapeError
from finetune_kit.imaging import check_image_files, decode_array, resize_center_crop_array, resize_uint8
from finetune_kit.inference.deploy_meta import DeployMeta
from finetune_kit.inference.onnx_model import OnnxModel
from finetune_kit.inference.predictions import Predictions
from finetune_kit.storage.paths import user_path

__all__ = ["normalize_array", "predict_onnx"]


def normalize_array(batch: np.ndarray, meta: DeployMeta) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` at the stored size -> the model's float32 input.

    The operations and their order are those of the PyTorch evaluation transform: ``x / 255``,
    ``(x - mean) / std`` in float32, then the resize and centre crop to ``input_size`` when it
    differs from ``image_size``.

    Args:
        batch: uint8 images at ``meta.image_size``.
        meta: the model's metadata.

    Returns:
        ``(N, C, *input_size)`` float32.

    Example:
        >>> meta = DeployMeta(("a",), 1, (2, 2), (2, 2), (0.5,), (0.5,))
        >>> normalize_array(np.full((1, 1, 2, 2), 255, np.uint8), meta)[0, 0, 0].tolist()
        [1.0, 1.0]
    """
    mean = np.asarray(meta.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta.std, np.float32).reshape(1, -1, 1, 1)
    x = batch.astype(np.float32) * np.float32(1.0 / 255)
    x = (x - mean) / std
    if meta.input_size != meta.image_size:
        x = resize_center_crop_array(x, meta.input_size[0])
    return x


def _graph_input(batch: np.ndarray, meta: DeployMeta) -> np.ndarray:
    """What the graph takes: normalised float32, or uint8 pixels at the input size."""
    if meta.input_format == "float32":
        return normalize_array(batch, meta)
    if meta.input_size == meta.image_size:
        return batch
    resized = resize_center_crop_array(batch.astype(np.float32), meta.input_size[0])
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------- inputs
def _paths(images: Any) -> list[str | Path] | None:
    """The file paths when ``images`` is one path or a list/tuple of paths, else None."""
    if isinstance(images, (str, Path)):
        return [images]
    if isinstance(images, (list, tuple)) and all(isinstance(p, (str, Path)) for p in images):
        return list(images)
    return None


def _file_batches(paths: list[str | Path], meta: DeployMeta, batch_size: int) -> Iterator[np.ndarray]:
    if meta.in_channels not in (1, 3):
        raise ConfigError(
            f"The model takes {meta.in_channels}-channel images; image files decode to 1 or 3 "
            "channels. Pass a uint8 array (N, C, H, W) instead."
        )

    def one(path: str | Path) -> np.ndarray:
        return resize_uint8(decode_array(path, in_channels=meta.in_channels), meta.image_size)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(paths), batch_size):
            yield np.stack(list(pool.map(one, paths[start : start + batch_size])))


def _array(images: Any, meta: DeployMeta) -> np.ndarray:
    """A uint8 ``(N, C, H, W)`` array with the model's channels and stored size, or an error."""
    if not hasattr(images, "__array__"):
        raise ConfigError(
            f"An ONNX model predicts image files or a uint8 array (N, C, H, W); got a "
            f"{type(images).__name__}. For a dataset split, pass its images as an array."
        )
    array = np.asarray(images)
    if array.dtype != np.uint8:
        raise DataError(
            f"The images are {array.dtype}; predict expects uint8 pixels in [0, 255]. "
            "Convert floats in [0, 1] with (x * 255).round().astype(numpy.uint8)."
        )
    if array.ndim == 3:
        array = array[None]
    expected = (meta.in_channels, *meta.image_size)
    if array.ndim != 4 or array.shape[0] == 0:
        raise ShapeError(f"Images must be (C, H, W) or (N, C, H, W) with N >= 1; got shape {array.shape}.")
    if array.shape[1] != meta.in_channels:
        raise ShapeError(
            f"The images have {array.shape[1]} channels but the model takes {meta.in_channels}-channel "
            "images; convert them first."
        )
    if array.shape[1:] != expected:
        height, width = meta.image_size
        raise ShapeError(
            f"The images are {array.shape[2]}x{array.shape[3]} but the model takes {height}x{width} "
            "(height x width); resize them first, or pass the image files, which are resized."
        )
    return array


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- predict
def predict_onnx(
    model: OnnxModel | str | Path, images: Any, *, top_k: int = 5, batch_size: int = 256
) -> Predictions:
    """:func:`finetune_kit.inference.predict` with an ONNX model, in onnxruntime on the CPU.

    Args:
        model: an :class:`~finetune_kit.inference.onnx_model.OnnxModel` or a ``.onnx`` path.
        images: PNG/JPEG paths (or one path), or a uint8 array ``(N, C, H, W)`` /
            ``(C, H, W)`` with the model's channels at its stored image size.
        top_k: classes shown per image by ``top()`` / ``table()``.
        batch_size: images per run of the graph (and files decoded at a time).

    Returns:
        :class:`~finetune_kit.inference.predictions.Predictions` holding numpy arrays.

    Raises:
        DataError: a missing or unreadable image file (named), non-uint8 arrays.
        ShapeError: images with the wrong channel count or size.
        ConfigError: an unsupported input, or onnxruntime not installed.
        CheckpointError: a missing, corrupt or foreign ``.onnx`` file.

    Example:
        >>> predict_onnx("model.onnx", ["missing.png"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.DataError: Image file missing.png does not exist ...
    """
    paths = _paths(images)
    if paths is not None:  # a missing file fails before the model is loaded
        check_image_files([user_path(p, "image") for p in paths])
    if not isinstance(model, OnnxModel):
        model = OnnxModel(model)
    meta = model.meta
    if paths is not None:
        chunks, sources = _file_batches(paths, meta, batch_size), [str(p) for p in paths]
    else:
        array = _array(images, meta)
        chunks = (array[i : i + batch_size] for i in range(0, len(array), batch_size))
        sources = [f"array[{i}]" for i in range(len(array))]
    logits = np.concatenate([model.run(_graph_input(chunk, meta)) for chunk in chunks])
    return Predictions(
        logits=logits,
        probabilities=_softmax(logits),
        indices=logits.argmax(axis=1),
        class_names=model.class_names,
        sources=sources,
        top_k=top_k,
    )
