"""Inference: export trained weights, load them back, predict new images and explain predictions.

Example:
    >>> from finetune_kit.inference import Predictions, export, load_model, predict
    >>> callable(export) and callable(load_model) and callable(predict)
    True
"""

from __future__ import annotations

from finetune_kit.inference.explain import Explanation, explain
from finetune_kit.inference.export import export
from finetune_kit.inference.load import LoadedModel, load_model
from finetune_kit.inference.predict import Predictions, predict

__all__ = ["Explanation", "LoadedModel", "Predictions", "explain", "export", "load_model", "predict"]
