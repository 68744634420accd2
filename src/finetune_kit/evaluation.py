"""Evaluation: run a model over a loader and reduce loss, accuracy and metrics across ranks.

Example:
    >>> import torch
    >>> from finetune_kit.data import create_datasets, make_loaders
    >>> from finetune_kit.runtime import Precision
    >>> data = create_datasets("fake", num_classes=2, train_size=8, test_size=8)
    >>> test = make_loaders(data, batch_size=4).test
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    >>> values = evaluate_model(model, test, num_classes=2, precision=Precision.resolve("32",
    ...     torch.device("cpu")), device=torch.device("cpu"))
    >>> sorted(values)
    ['accuracy', 'confusion_matrix', 'loss']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from finetune_kit.distributed import all_reduce_sum
from finetune_kit.errors import ConfigError
from finetune_kit.metrics import Metrics
from finetune_kit.runtime import Precision

__all__ = ["TTA_MODES", "evaluate_model", "predict_logits"]

TTA_MODES = (None, "flip")


def predict_logits(model: nn.Module, x: torch.Tensor, *, precision: Precision,
                   device: torch.device, tta: str | None = None) -> torch.Tensor:
    """Logits of ``model`` for a batch, in float32; ``tta="flip"`` averages the
    probabilities of the image and its mirror image (returned as log-probabilities).

    Raises:
        ConfigError: an unknown ``tta`` mode.
    """
    if tta not in TTA_MODES:
        raise ConfigError(f"tta must be None or 'flip', got {tta!r}.")
    with precision.autocast(device):
        logits = model(x).float()
        if tta == "flip":
            mirrored = model(x.flip(-1)).float()
            probs = (logits.softmax(dim=1) + mirrored.softmax(dim=1)) / 2
            logits = probs.clamp_min(1e-12).log()
    return logits


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Any, *, num_classes: int, precision: Precision,
                   device: torch.device, metrics: Sequence[str] = (), tta: str | None = None
                   ) -> dict[str, Any]:
    """Loss, accuracy, confusion matrix and extra ``metrics`` of ``model`` over ``loader``.

    The model is put in eval mode for the pass and restored afterwards. Under DDP every rank
    evaluates its shard and the metric states (sums of counts) are added up over ranks.

    Args:
        model: the network.
        loader: a finetune_kit loader (``iter_epoch``) yielding normalised batches.
        num_classes: number of classes.
        precision: autocast settings.
        device: where the batches are.
        metrics: extra metric names (``finetune-kit list metrics``).
        tta: test-time augmentation, ``None`` or ``"flip"``.

    Returns:
        ``{name: value}``: floats, per-class lists, and the confusion matrix as lists.
    """
    was_training = model.training
    model.eval()
    names = list(dict.fromkeys(["loss", "accuracy", "confusion_matrix", *metrics]))
    tracker = Metrics(names, num_classes, device=device)
    for x, y in loader.iter_epoch(0):
        logits = predict_logits(model, x, precision=precision, device=device, tta=tta)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        tracker.update(logits, y, loss=loss)
    model.train(was_training)
    tracker.sync(all_reduce_sum)  # sums of counts over ranks, not averages of averages
    return tracker.compute()
