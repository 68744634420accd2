"""Predict the classes of new images: :func:`predict`, with PyTorch or with onnxruntime.

An ONNX file (``model.onnx``, or an :class:`~finetune_kit.inference.onnx_model.OnnxModel`) runs
in onnxruntime with numpy and Pillow only: that path never imports PyTorch, so a deployment
needs only ``numpy``, ``Pillow`` and ``onnxruntime``
(:mod:`~finetune_kit.inference.onnx_predict`). Everything else (a model, a
:class:`~finetune_kit.inference.load.LoadedModel`, an export directory, a checkpoint or a run)
runs in PyTorch (:mod:`~finetune_kit.inference.torch_predict`). Both preprocess images as the
model's evaluation data was and return the same
:class:`~finetune_kit.inference.predictions.Predictions`.

``finetune-kit predict --checkpoint CKPT IMAGE... [--top-k 3]`` and
``finetune-kit predict --model model.onnx IMAGE...`` print ``predict(...).table()``.

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

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_kit.errors import ConfigError
from finetune_kit.inference.onnx_model import OnnxModel
from finetune_kit.inference.predictions import Predictions

if TYPE_CHECKING:
    import torch
    from torch import nn

    from finetune_kit.inference.load import LoadedModel

__all__ = ["Predictions", "predict"]


def _is_onnx(model_or_path: Any) -> bool:
    if isinstance(model_or_path, OnnxModel):
        return True
    return isinstance(model_or_path, (str, Path)) and Path(model_or_path).suffix.lower() == ".onnx"


def _check_counts(top_k: Any, batch_size: Any) -> None:
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}.")


def predict(
    model_or_path: nn.Module | LoadedModel | OnnxModel | str | Path,
    images: Any,
    *,
    meta: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    top_k: int = 5,
    batch_size: int = 256,
) -> Predictions:
    """Predict the class of each image, preprocessed as the model's evaluation data was.

    Args:
        model_or_path: a ``.onnx`` file or :class:`~finetune_kit.inference.onnx_model.OnnxModel`
            (run in onnxruntime on the CPU, without PyTorch); or a model (with ``meta``), a
            :class:`~finetune_kit.inference.load.LoadedModel`, or a path that
            :func:`~finetune_kit.inference.load.load_model` reads (an export, a ``.ckpt``
            checkpoint or a run directory), run in PyTorch.
        images: PNG/JPEG file paths (or one path), converted to the training channels and
            resized to the stored image size ``meta["image_size"]``. With PyTorch also a uint8
            tensor ``(N, C, H, W)`` or ``(C, H, W)`` (resized likewise), or a dataset split
            yielding ``(image, label)`` (e.g. ``data.test``), whose labels end up in
            ``Predictions.targets``. With ONNX also a uint8 numpy array ``(N, C, H, W)`` or
            ``(C, H, W)`` at the stored image size.
        meta: the training data's ``DataBundle.meta()``; required with a bare model, and
            overrides a LoadedModel's own. An ONNX file carries its own: pass None.
        device: where to run; None: where the model is (a path loads to the CPU). A model on
            another device is not moved behind your back: that is an error. ONNX runs on the
            CPU (None or ``"cpu"``).
        top_k: classes shown per image by ``top()`` / ``table()`` (at most the class count).
        batch_size: images per forward pass (and files decoded at a time).

    Returns:
        :class:`~finetune_kit.inference.predictions.Predictions` (PyTorch CPU tensors, or
        numpy arrays from ONNX).

    Raises:
        DataError: a missing or unreadable image file (named), non-uint8 images, an empty input.
        ShapeError: images with the wrong channel count (or, for ONNX arrays, the wrong size),
            or a model whose number of outputs differs from the number of class names.
        ConfigError: a bad ``top_k``/``batch_size``, missing ``meta``, an unsupported input,
            ``meta``/a GPU with an ONNX model, or onnxruntime not installed.
        DeviceError: ``device`` differs from the model's device, or is not available.
        CheckpointError: the path holds nothing loadable (a missing, corrupt or foreign
            ``.onnx`` file included).

    Example:
        >>> import torch
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
    _check_counts(top_k, batch_size)
    if _is_onnx(model_or_path):
        if meta is not None:
            raise ConfigError("An ONNX model carries its own classes and preprocessing; do not pass meta=.")
        if device is not None and str(device) != "cpu":
            raise ConfigError(
                f"ONNX models run on the CPU in onnxruntime; got device={str(device)!r}. "
                "Pass device=None or 'cpu'."
            )
        from finetune_kit.inference.onnx_predict import predict_onnx

        return predict_onnx(model_or_path, images, top_k=top_k, batch_size=batch_size)
    if isinstance(model_or_path, (str, Path)) and Path(model_or_path).suffix.lower() == ".pt2":
        raise ConfigError(
            f"{model_or_path} is a torch.export program; predict reads .onnx files, exports, "
            "checkpoints and runs. Run it with torch.export.load(path).module()."
        )
    from finetune_kit.inference.torch_predict import predict_torch

    return predict_torch(model_or_path, images, meta=meta, device=device, top_k=top_k, batch_size=batch_size)
