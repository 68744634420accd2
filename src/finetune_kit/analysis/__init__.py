"""Analysis: what a trained model gets wrong, and the figures of a run.

Example:
    >>> from finetune_kit.analysis import plot_history, top_losses
    >>> callable(plot_history) and callable(top_losses)
    True
"""

from __future__ import annotations

from finetune_kit.analysis.class_figures import per_class_accuracy, plot_confusion, plot_per_class
from finetune_kit.analysis.figures import denormalize, plot_history, plot_images
from finetune_kit.analysis.lr_plot import plot_lr_find
from finetune_kit.analysis.top_losses import TopLosses, top_losses

__all__ = [
    "TopLosses",
    "denormalize",
    "per_class_accuracy",
    "plot_confusion",
    "plot_history",
    "plot_images",
    "plot_lr_find",
    "plot_per_class",
    "top_losses",
]
