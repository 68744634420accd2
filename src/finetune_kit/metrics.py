"""Metrics by name: the registry, :func:`create_metric`, and the :class:`Metrics` collection.

The built-in metrics (:mod:`finetune_kit.builtin_metrics`: ``accuracy``, ``top_k_accuracy``,
``precision``, ``recall``, ``f1``, ``confusion_matrix``, ``loss``) are streaming: they update per
batch on the device and compute at the end, and their sum-only states add up across processes
(:class:`~finetune_kit.metric_base.Metric`). :class:`Metrics` updates several together. The
input and edge-case conventions are listed in :mod:`finetune_kit.builtin_metrics`.

Example:
    >>> import torch
    >>> from finetune_kit.metrics import create_metric
    >>> f1 = create_metric("f1", num_classes=3, average="macro")
    >>> f1.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(f1.compute(), 4)
    0.5556
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from finetune_kit.builtin_metrics import (
    Accuracy,
    ConfusionMatrix,
    F1Score,
    LossMetric,
    Precision,
    Recall,
    TopKAccuracy,
)
from finetune_kit.errors import ConfigError
from finetune_kit.metric_base import Metric
from finetune_kit.registry import Registry, did_you_mean
from finetune_kit.report import Value

__all__ = [
    "METRICS",
    "Metric",
    "Metrics",
    "create_metric",
    "list_metrics",
    "register_metric",
]


METRICS: Registry[type[Metric]] = Registry("metric")
for _name, _cls in [("accuracy", Accuracy), ("top_k_accuracy", TopKAccuracy),
                    ("precision", Precision), ("recall", Recall), ("f1", F1Score),
                    ("confusion_matrix", ConfusionMatrix), ("loss", LossMetric)]:
    METRICS.register(_name, _cls)


def register_metric(name: str, cls: type[Metric] | None = None, *, override: bool = False):
    """Register a :class:`Metric` subclass under ``name`` (or use as a decorator).

    Example:
        >>> register_metric("acc", Accuracy) is Accuracy
        True
        >>> METRICS.unregister("acc")
    """
    return METRICS.register(name, cls, override=override)


def list_metrics(pattern: str = "*") -> list[str]:
    """Sorted names of the registered metrics matching a shell-style glob.

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered metrics that match.

    Example:
        >>> list_metrics("*accuracy")
        ['accuracy', 'top_k_accuracy']
    """
    return METRICS.list(pattern)


def create_metric(name: str, *, num_classes: int, **options: Any) -> Metric:
    """Build the metric registered as ``name``.

    Args:
        name: a name from :func:`list_metrics`.
        num_classes: number of classes.
        **options: that metric's options (``average``, ``k``, ``normalize``, ``device``,
            ``ignore_index``).

    Returns:
        A fresh metric.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an unknown option or a bad value.

    Example:
        >>> create_metric("precision", num_classes=4, average="weighted")
        Precision(num_classes=4, average='weighted')
    """
    cls = METRICS.get(name)
    accepted = {"device", "ignore_index"}
    for klass in cls.__mro__:
        if klass is not object and "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs"}
    accepted.discard("num_classes")
    for key in options:
        if key not in accepted:
            raise ConfigError(f"The metric {name!r} has no option {key!r}."
                              f"{did_you_mean(key, sorted(accepted))} "
                              f"Its options are: {', '.join(sorted(accepted))}.")
    return cls(num_classes, **options)


class Metrics:
    """Several metrics updated together; ``compute()`` returns ``{name: value}``.

    Args:
        metrics: metric names (keys = names), or a mapping key -> name or :class:`Metric`.
        num_classes: number of classes (for the names).
        device: where the states start.

    Example:
        >>> import torch
        >>> ms = Metrics(["accuracy", "loss"], num_classes=2)
        >>> ms.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), loss=torch.tensor(0.5))
        >>> ms.compute()
        {'accuracy': 1.0, 'loss': 0.5}
    """

    def __init__(self, metrics: Iterable[str] | Mapping[str, str | Metric], num_classes: int,
                 *, device: str | torch.device | None = None) -> None:
        items = metrics.items() if isinstance(metrics, Mapping) else ((m, m) for m in metrics)
        self.metrics: dict[str, Metric] = {}
        for key, spec in items:
            if isinstance(spec, Metric):
                self.metrics[key] = spec
            else:
                self.metrics[key] = create_metric(spec, num_classes=num_classes, device=device)

    def update(self, logits_or_preds: Tensor, targets: Tensor, loss: Tensor | None = None) -> None:
        """Update every metric with the batch (no host sync)."""
        for metric in self.metrics.values():
            metric.update(logits_or_preds, targets, loss)

    def compute(self) -> dict[str, Value]:
        """``{name: value}`` (per-class metrics and the confusion matrix as lists)."""
        return {key: metric.compute() for key, metric in self.metrics.items()}

    def reset(self) -> None:
        """Reset every metric."""
        for metric in self.metrics.values():
            metric.reset()

    def state_tensors(self) -> list[Tensor]:
        """All state tensors, metric by metric."""
        return [t for metric in self.metrics.values() for t in metric.state_tensors()]

    def sync(self, all_reduce_fn: Callable[[Tensor], Any]) -> None:
        """Sum every metric's state across processes (see :meth:`Metric.sync`)."""
        for metric in self.metrics.values():
            metric.sync(all_reduce_fn)

    def to(self, device: str | torch.device) -> Metrics:
        """Move every state to ``device``; returns self."""
        for metric in self.metrics.values():
            metric.to(device)
        return self

    def __getitem__(self, key: str) -> Metric:
        return self.metrics[key]

    def __repr__(self) -> str:
        return f"Metrics({list(self.metrics)})"
