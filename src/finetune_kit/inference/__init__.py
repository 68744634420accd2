"""Inference: export trained models, load them back, predict new images and explain predictions.

Importing this package does not import PyTorch: :func:`predict` with an ONNX file, and
:class:`OnnxModel`, run on numpy, Pillow and onnxruntime alone. The PyTorch parts
(:func:`load_model`, :class:`LoadedModel`, :func:`explain`) are loaded on first use.

Example:
    >>> from finetune_kit.inference import OnnxModel, Predictions, export, load_model, predict
    >>> callable(export) and callable(load_model) and callable(predict)
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from finetune_kit.inference.export import export
from finetune_kit.inference.onnx_model import OnnxModel
from finetune_kit.inference.predict import Predictions, predict

if TYPE_CHECKING:
    from finetune_kit.inference.gradcam import Explanation, explain
    from finetune_kit.inference.load import LoadedModel, load_model

# names whose modules import PyTorch: loaded on first use (PEP 562)
_LAZY = {
    "Explanation": "finetune_kit.inference.gradcam",
    "LoadedModel": "finetune_kit.inference.load",
    "explain": "finetune_kit.inference.gradcam",
    "load_model": "finetune_kit.inference.load",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'finetune_kit.inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Explanation",
    "LoadedModel",
    "OnnxModel",
    "Predictions",
    "explain",
    "export",
    "load_model",
    "predict",
]
