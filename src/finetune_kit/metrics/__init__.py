"""Metrics: streaming classification metrics by name, and the classification report.

Example:
    >>> import torch
    >>> f1 = create_metric("f1", num_classes=3, average="macro")
    >>> f1.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(f1.compute(), 4)
    0.5556
"""

from __future__ import annotations

from finetune_kit.metrics.base import Metric
from finetune_kit.metrics.registry import METRICS, Metrics, create_metric, list_metrics, register_metric
from finetune_kit.metrics.report import ClassificationReport, classification_report

__all__ = [
    "METRICS",
    "ClassificationReport",
    "Metric",
    "Metrics",
    "classification_report",
    "create_metric",
    "list_metrics",
    "register_metric",
]
