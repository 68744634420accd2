"""Evaluation: run a model over a loader and reduce loss, accuracy and metrics across ranks.

Example:
    >>> import torch
    >>> from finetune_kit.data import create_datasets, make_loaders
    >>> from finetune_kit.runtime import PrecisionMode
    >>> data = create_datasets("fake", num_classes=2, train_size=8, test_size=8)
    >>> test = make_loaders(data, batch_size=4).test
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    >>> values = evaluate_model(model, test, num_classes=2, precision=PrecisionMode.resolve("32",
    ...     torch.device("cpu")), device=torch.device("cpu"))
    >>> sorted(values)
    ['accuracy', 'confusion_matrix', 'loss']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from finetune_kit.metrics import ClassificationReport, Metrics, classification_report
from finetune_kit.runtime import PrecisionMode, eval_forward
from finetune_kit.runtime.distributed import all_reduce_sum
from finetune_kit.storage.run_dir import RunDir

__all__ = ["evaluate_model", "report_from_values", "save_report"]


def evaluate_model(
    model: nn.Module,
    loader: Any,
    *,
    num_classes: int,
    precision: PrecisionMode,
    device: torch.device,
    metrics: Sequence[str] = (),
    tta: str | None = None,
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
    names = list(dict.fromkeys(["loss", "accuracy", "confusion_matrix", *metrics]))
    tracker = Metrics(names, num_classes, device=device)
    for logits, (_, y) in eval_forward(model, loader.iter_epoch(0), precision=precision, tta=tta):
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        tracker.update(logits, y, loss=loss)
    tracker.sync(all_reduce_sum)  # sums of counts over ranks, not averages of averages
    return tracker.compute()


def report_from_values(values: dict[str, Any], class_names: Sequence[str]) -> ClassificationReport:
    """The classification report of :func:`evaluate_model`'s values (with their mean loss)."""
    report = classification_report(torch.tensor(values["confusion_matrix"]), class_names=list(class_names))
    report.loss = values["loss"]
    return report


def save_report(report: ClassificationReport, run_dir: RunDir) -> None:
    """``report.txt`` (the printed table) and ``report.json`` in the run directory."""
    with run_dir.writing("the test report"):
        run_dir.path("report.txt").write_text(report.text() + "\n", encoding="utf-8")
        run_dir.path("report.json").write_text(report.to_json(), encoding="utf-8")
