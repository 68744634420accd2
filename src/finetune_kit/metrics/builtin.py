"""The built-in streaming classification metrics: accuracy, top-k, precision, recall, F1, loss.

Most metrics accumulate one confusion matrix ``(C, C)`` (rows: true class, columns: predicted
class) with a fixed-size ``scatter_add_``, so ``update`` never waits for the device (no
``.item()``, no data-dependent shapes). ``top_k_accuracy`` keeps (correct, total) counts and
``loss`` keeps (sum, count). All states are sums (see :class:`~finetune_kit.metrics.base.Metric`).

Inputs: ``logits_or_preds`` is logits/probabilities ``(N, C)`` (argmax is the prediction) or
predicted classes ``(N,)``; ``targets`` is classes ``(N,)`` or probabilities ``(N, C)`` (their
argmax is the class, e.g. for mixup targets). Targets equal to ``ignore_index`` (-100) are
skipped. Out-of-range classes raise on CPU; on CUDA they trip a device-side assert.

Edge-case conventions are those of :mod:`finetune_kit.metrics.report` (sklearn's ``zero_division=0``
with ``labels=range(C)``): a class never predicted has precision 0.0, a class absent from the
targets has recall 0.0, f1 is 0.0 when ``p + r = 0``, ``macro`` averages over all ``C`` classes.
With no samples every metric is 0.0 and ``loss`` is ``nan``. ``top_k_accuracy`` counts a sample
as correct when fewer than ``k`` classes score strictly higher than its target (ties go in the
sample's favour).

Example:
    >>> import torch
    >>> f1 = F1Score(num_classes=3, average="macro")
    >>> f1.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    >>> round(f1.compute(), 4)
    0.5556
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from finetune_kit.errors import ConfigError, DataError, ShapeError
from finetune_kit.metrics.base import Metric
from finetune_kit.metrics.report import AVERAGES, Value, average_scores, per_class_scores, safe_div

__all__ = [
    "Accuracy",
    "ConfusionMatrix",
    "F1Score",
    "LossMetric",
    "Precision",
    "Recall",
    "TopKAccuracy",
]


def _preds(logits_or_preds: Tensor, num_classes: int) -> Tensor:
    x = logits_or_preds
    if x.ndim == 2:
        if x.shape[1] != num_classes:
            raise ShapeError(f"logits have {x.shape[1]} classes; the metric has {num_classes}.")
        return x.argmax(dim=1)
    if x.ndim == 1 and not x.is_floating_point():
        return x
    raise ShapeError(
        f"predictions must be logits (N, C) or integer classes (N,); got {x.dtype} {tuple(x.shape)}."
    )


def _targets(targets: Tensor, n: int, num_classes: int) -> Tensor:
    t = targets.argmax(dim=1) if targets.ndim == 2 else targets
    if t.ndim != 1 or t.shape[0] != n or t.is_floating_point():
        raise ShapeError(
            f"targets must be {n} integer classes (N,) or probabilities (N, C); "
            f"got {targets.dtype} {tuple(targets.shape)}."
        )
    if targets.ndim == 2 and targets.shape[1] != num_classes:
        raise ShapeError(f"targets have {targets.shape[1]} classes; the metric has {num_classes}.")
    return t


def _check_range(values: Tensor, valid: Tensor, num_classes: int, what: str) -> None:
    """On CPU (where it costs nothing) raise for classes outside ``[0, C)``."""
    if values.device.type != "cpu":
        return
    bad = valid & ((values < 0) | (values >= num_classes))
    if bool(bad.any()):
        raise DataError(
            f"{what} must be classes in [0, {num_classes}); got "
            f"{values[bad][:5].tolist()}. Check num_classes and the labels."
        )


class _ConfusionMetric(Metric):
    """A metric computed from a streaming confusion matrix ``(C, C)`` of int64 counts."""

    def _new_state(self) -> list[Tensor]:
        return [torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=self._device)]

    def update(self, logits_or_preds: Tensor, targets: Tensor, loss: Tensor | None = None) -> None:
        """Add one batch to the confusion matrix with a fixed-size ``scatter_add_``."""
        c = self.num_classes
        preds = _preds(logits_or_preds.detach(), c)
        target = _targets(targets.detach(), preds.shape[0], c).to(preds.device)
        valid = target != self.ignore_index
        _check_range(target, valid, c, "targets")
        _check_range(preds, valid, c, "predictions")
        index = torch.where(valid, target * c + preds, torch.zeros_like(target))
        self._follow(index)
        self._state[0].view(-1).scatter_add_(0, index, valid.to(torch.int64))

    @property
    def confusion(self) -> Tensor:
        """The accumulated confusion matrix (rows true, columns predicted), on its device."""
        return self._state[0]


class Accuracy(_ConfusionMetric):
    """Fraction of samples whose predicted class is the target class.

    Example:
        >>> m = Accuracy(num_classes=3)
        >>> m.update(torch.tensor([0, 2, 1]), torch.tensor([0, 2, 2]))
        >>> round(m.compute(), 4)
        0.6667
    """

    def _compute(self, state: list[Tensor]) -> float:
        cm = state[0]
        return float(safe_div(cm.trace().item(), cm.sum().item()))


class _AveragedMetric(_ConfusionMetric):
    score = ""

    def __init__(self, num_classes: int, *, average: str = "macro", **kwargs: Any) -> None:
        if average not in AVERAGES:
            raise ConfigError(f"average must be one of {', '.join(AVERAGES)}; got {average!r}.")
        self.average = average
        super().__init__(num_classes, **kwargs)

    def _compute(self, state: list[Tensor]) -> Value:
        return average_scores(per_class_scores(state[0]), self.score, self.average)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, average={self.average!r})"


class Precision(_AveragedMetric):
    """tp / predicted per class, averaged by ``average`` (none, macro, weighted, micro).

    Example:
        >>> m = Precision(num_classes=2, average="none")
        >>> m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
        >>> m.compute()
        [0.5, 1.0]
    """

    score = "precision"


class Recall(_AveragedMetric):
    """tp / support per class, averaged by ``average`` (none, macro, weighted, micro).

    Example:
        >>> m = Recall(num_classes=2, average="weighted")
        >>> m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
        >>> round(m.compute(), 4)
        0.6667
    """

    score = "recall"


class F1Score(_AveragedMetric):
    """2 tp / (2 tp + fp + fn) per class, averaged by ``average``.

    Example:
        >>> m = F1Score(num_classes=2, average="micro")
        >>> m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
        >>> round(m.compute(), 4)
        0.6667
    """

    score = "f1"


class ConfusionMatrix(_ConfusionMetric):
    """The confusion matrix as a list of rows (true class) of counts per predicted class.

    Args:
        normalize: None (counts), ``"true"`` (rows sum to 1), ``"pred"`` (columns sum to 1)
            or ``"all"``; empty rows/columns stay 0.

    Example:
        >>> m = ConfusionMatrix(num_classes=2)
        >>> m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
        >>> m.compute()
        [[1, 0], [1, 1]]
    """

    def __init__(self, num_classes: int, *, normalize: str | None = None, **kwargs: Any) -> None:
        if normalize not in (None, "true", "pred", "all"):
            raise ConfigError(f"normalize must be None, 'true', 'pred' or 'all'; got {normalize!r}.")
        self.normalize = normalize
        super().__init__(num_classes, **kwargs)

    def _compute(self, state: list[Tensor]) -> Value:
        cm = state[0].numpy()
        if self.normalize is None:
            return cm.tolist()
        den = {"true": cm.sum(axis=1, keepdims=True), "pred": cm.sum(axis=0, keepdims=True), "all": cm.sum()}[
            self.normalize
        ]
        return safe_div(cm, den).tolist()


class TopKAccuracy(Metric):
    """Fraction of samples whose target is among the ``k`` highest-scoring classes.

    Needs logits ``(N, C)``. A sample is correct when fewer than ``k`` classes score strictly
    higher than its target class.

    Args:
        k: how many top classes count (``1 <= k <= num_classes``).

    Example:
        >>> m = TopKAccuracy(num_classes=3, k=2)
        >>> m.update(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), torch.tensor([1, 2]))
        >>> m.compute()
        0.5
    """

    def __init__(self, num_classes: int, *, k: int = 5, **kwargs: Any) -> None:
        if int(k) != k or not 1 <= k <= num_classes:
            raise ConfigError(
                f"top_k_accuracy needs 1 <= k <= num_classes={num_classes}; got k={k}. Pass a smaller k."
            )
        self.k = int(k)
        super().__init__(num_classes, **kwargs)

    def _new_state(self) -> list[Tensor]:
        return [torch.zeros(2, dtype=torch.int64, device=self._device)]  # correct, total

    def update(self, logits_or_preds: Tensor, targets: Tensor, loss: Tensor | None = None) -> None:
        """Add one batch of logits ``(N, C)``."""
        logits = logits_or_preds.detach()
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ShapeError(
                f"top_k_accuracy needs logits (N, {self.num_classes}); got {tuple(logits.shape)}."
            )
        target = _targets(targets.detach(), logits.shape[0], self.num_classes).to(logits.device)
        valid = target != self.ignore_index
        _check_range(target, valid, self.num_classes, "targets")
        safe = torch.where(valid, target, torch.zeros_like(target))
        own = logits.gather(1, safe.unsqueeze(1))
        correct = ((logits > own).sum(dim=1) < self.k) & valid
        self._follow(logits)
        self._state[0] += torch.stack([correct.sum(), valid.sum()])

    def _compute(self, state: list[Tensor]) -> float:
        correct, total = state[0].tolist()
        return float(safe_div(correct, total))


class LossMetric(Metric):
    """Mean loss per sample: batch losses weighted by batch size (or per-sample losses).

    ``update(..., loss=...)`` takes the batch's mean loss (a scalar tensor; weighted by the
    number of targets) or per-sample losses ``(N,)``. Sums are float64 (float32 on MPS).

    Example:
        >>> m = LossMetric(num_classes=2)
        >>> m.update(torch.zeros(2, 2), torch.tensor([0, 1]), loss=torch.tensor(1.0))
        >>> m.update(torch.zeros(1, 2), torch.tensor([0]), loss=torch.tensor([4.0]))
        >>> m.compute()
        2.0
    """

    def _new_state(self) -> list[Tensor]:
        dtype = torch.float32 if self._device.type == "mps" else torch.float64
        return [torch.zeros(2, dtype=dtype, device=self._device)]  # sum, count

    def update(self, logits_or_preds: Tensor, targets: Tensor, loss: Tensor | None = None) -> None:
        """Add one batch's loss (no host sync).

        Raises:
            ConfigError: ``loss`` is None.
        """
        if loss is None:
            raise ConfigError("The 'loss' metric needs the batch loss: update(..., loss=loss).")
        loss = loss.detach()
        self._follow(loss)
        dtype = self._state[0].dtype
        per_sample = loss.ndim > 0
        n = torch.full(
            (), float(loss.numel() if per_sample else targets.shape[0]), dtype=dtype, device=loss.device
        )  # a fill kernel: no host-to-device copy
        total = loss.to(dtype).sum() if per_sample else loss.to(dtype) * n
        self._state[0] += torch.stack([total, n])

    def _compute(self, state: list[Tensor]) -> float:
        total, count = state[0].tolist()
        return total / count if count > 0 else float("nan")
