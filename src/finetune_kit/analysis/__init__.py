"""Analysis: what a trained model gets wrong, and the figures of a run.

Example:
    >>> from finetune_kit.analysis import plot_history, top_losses
    >>> callable(plot_history) and callable(top_losses)
    True
"""

from __future__ import annotations

from finetune_kit.analysis.figures import plot_confusion, plot_history, plot_images
from finetune_kit.analysis.top_losses import TopLosses, top_losses

__all__ = ["TopLosses", "plot_confusion", "plot_history", "plot_images", "top_losses"]
