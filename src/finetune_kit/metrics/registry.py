"""Metrics by name: the registry, :func:`create_metric`, and the :class:`Metrics` collection.

The built-in metrics (:mod:`finetune_kit.metrics.builtin`: ``accuracy``, ``top_k_accuracy``,
``precision``, ``recall``, ``f1``, ``confusion_matrix``, ``loss``) are streaming: they update per
batch on the device and compute at the end, and their sum-only states add up across processes
(:class:`~finetune_kit.metrics.base.Metric`). :class:`Metrics` updates several together. The
input and edge-case conventions are listed in :mod:`finetune_kit.metrics.builtin`.

Example:
    >>> import torch
    >>> from finetune_kit.metrics import create_metric
    >>> f1 = create_metric("f1", num_classes=3, average="macro")
    >>> f1.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(f1.compute(), 4)
    0.5556
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from finetune_kit.metrics.base import Metric
from finetune_kit.metrics.builtin import (
    Accuracy,
    ConfusionMatrix,
    F1Score,
    LossMetric,
    Precision,
    Recall,
    TopKAccuracy,
)
from finetune_kit.metrics.report import Value
from finetune_kit.registry import Registry, accepted_options

__all__ = [
    "METRICS",
    "Metric",
    "Metrics",
    "create_metric",
    "list_metrics",
    "register_metric",
]


def _metric_options(cls: type[Metric]) -> list[str]:
    """The options of a metric class: its own and its bases' ``__init__`` keywords."""
    accepted: set[str] = set()
    for klass in cls.__mro__:  # subclasses pass **kwargs on to their bases
        if klass is not object and "__init__" in vars(klass):
            accepted.update(accepted_options(klass.__init__, reserved=("num_classes",), open_kwargs=False))
    return sorted(accepted)


METRICS: Registry[type[Metric]] = Registry("metric", options=_metric_options)
for _name, _cls in [
    ("accuracy", Accuracy),
    ("top_k_accuracy", TopKAccuracy),
    ("precision", Precision),
    ("recall", Recall),
    ("f1", F1Score),
    ("confusion_matrix", ConfusionMatrix),
    ("loss", LossMetric),
]:
    METRICS.register(_name, _cls)


def register_metric(name: str, cls: type[Metric] | None = None, *, override: bool = False):
    """Register a :class:`Metric` subclass under ``name`` (or use as a decorator).

    Args:
        name: lowercase snake_case key, used in ``train.metrics`` as ``val_<name>``.
        cls: the :class:`~finetune_kit.metrics.Metric` subclass; omit it to decorate a class.
        override: replace an existing entry instead of raising.

    Returns:
        ``cls`` (or a decorator that registers and returns its argument).

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
    METRICS.check_options(name, options)
    return METRICS.get(name)(num_classes, **options)


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

    def __init__(
        self,
        metrics: Iterable[str] | Mapping[str, str | Metric],
        num_classes: int,
        *,
        device: str | torch.device | None = None,
    ) -> None:
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
