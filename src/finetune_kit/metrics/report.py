"""Per-class precision / recall / F1 from a confusion matrix, and the classification report.

The confusion matrix is ``(C, C)`` counts with rows = true class and columns = predicted class.
For class ``c``: ``tp`` is the diagonal, ``support`` the row sum, ``predicted`` the column sum.

Edge-case conventions (those of sklearn with ``zero_division=0`` and ``labels=range(C)``):

- precision of a class never predicted is 0.0; recall of a class absent from the targets
  is 0.0; f1 is ``2 tp / (2 tp + fp + fn)``, which equals ``2 p r / (p + r)`` whenever both are
  defined, and is 0.0 when ``p + r = 0``.
- ``macro`` is the plain mean over all ``C`` classes, including classes that never occur
  (in targets or predictions); ``weighted`` weights each class by its support; ``micro`` pools
  the counts of all classes, which for single-label data equals accuracy.
- with no samples at all, accuracy and every average are 0.0.

Example:
    >>> import numpy as np
    >>> from finetune_kit.metrics.report import classification_report
    >>> report = classification_report(np.array([[2, 0], [1, 1]]), class_names=["cat", "dog"])
    >>> report.accuracy
    0.75
    >>> print(report.text(digits=2))
                  precision    recall  f1-score   support
    <BLANKLINE>
             cat       0.67      1.00      0.80         2
             dog       1.00      0.50      0.67         2
    <BLANKLINE>
        accuracy                           0.75         4
       macro avg       0.83      0.75      0.73         4
    weighted avg       0.83      0.75      0.73         4
       micro avg       0.75      0.75      0.75         4
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from finetune_kit.errors import ConfigError, DataError, ShapeError

__all__ = [
    "AVERAGES",
    "ClassificationReport",
    "average_scores",
    "classification_report",
    "per_class_scores",
    "safe_div",
]

AVERAGES = ("none", "macro", "weighted", "micro")
Value = float | list[float] | list[list[float]]
_SCORES = ("precision", "recall", "f1")


def safe_div(num: Any, den: Any) -> Any:
    """Elementwise ``num / den`` as float64, with 0.0 wherever ``den`` is 0.

    Example:
        >>> safe_div(np.array([1.0, 1.0]), np.array([2.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_scores(confusion: Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, f1 and support of every class from a confusion matrix.

    Args:
        confusion: ``(C, C)`` counts, rows = true class, columns = predicted class.

    Returns:
        ``{"precision", "recall", "f1", "support", "tp", "predicted"}``: float64 arrays ``(C,)``
        following the module's zero-division conventions.

    Example:
        >>> per_class_scores(np.array([[1, 1], [0, 0]]))["precision"].tolist()
        [1.0, 0.0]
    """
    if isinstance(confusion, Tensor):
        confusion = confusion.detach().cpu().numpy()
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    return {
        "precision": safe_div(tp, predicted),
        "recall": safe_div(tp, support),
        "f1": safe_div(2 * tp, predicted + support),
        "support": support,
        "tp": tp,
        "predicted": predicted,
    }


def average_scores(scores: Mapping[str, np.ndarray], metric: str, average: str) -> Value:
    """Average one per-class score (``"precision"``, ``"recall"`` or ``"f1"``).

    Args:
        scores: the output of :func:`per_class_scores`.
        metric: which score.
        average: ``"none"`` (the list per class), ``"macro"``, ``"weighted"`` or ``"micro"``.

    Returns:
        A float, or a list of floats for ``"none"``.

    Raises:
        ConfigError: unknown ``metric`` or ``average``.

    Example:
        >>> s = per_class_scores(np.array([[3, 1], [0, 0]]))
        >>> average_scores(s, "recall", "macro"), average_scores(s, "recall", "micro")
        (0.375, 0.75)
    """
    if metric not in _SCORES:
        raise ConfigError(f"metric must be one of {', '.join(_SCORES)}; got {metric!r}.")
    values, support = scores[metric], scores["support"]
    if average == "none":
        return [float(v) for v in values]
    if average == "macro":
        return float(values.mean()) if values.size else 0.0
    if average == "weighted":
        return float(safe_div((values * support).sum(), support.sum()))
    if average == "micro":
        tp, pred, sup = scores["tp"].sum(), scores["predicted"].sum(), support.sum()
        pairs = {"precision": (tp, pred), "recall": (tp, sup), "f1": (2 * tp, pred + sup)}
        num, den = pairs[metric]
        return float(safe_div(num, den))
    raise ConfigError(f"average must be one of {', '.join(AVERAGES)}; got {average!r}.")


def _as_confusion(confusion: Tensor | np.ndarray | Sequence[Sequence[int]]) -> list[list[int]]:
    if isinstance(confusion, Tensor):
        confusion = confusion.detach().cpu().numpy()
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ShapeError(f"confusion must be a square (C, C) matrix; got shape {cm.shape}.")
    if not np.issubdtype(cm.dtype, np.number) or (cm < 0).any() or (cm != np.round(cm)).any():
        raise ConfigError("confusion must hold non-negative whole counts.")
    return cm.astype(np.int64).tolist()


@dataclass
class ClassificationReport:
    """Accuracy, per-class precision / recall / f1 / support, averages and the confusion matrix.

    Build it with :func:`classification_report` or :meth:`from_predictions`.

    Attributes:
        confusion: ``C`` rows (true class) of ``C`` counts (predicted class).
        class_names: one name per class.
        digits: decimals in :meth:`text`.
        loss: the mean loss, when the caller has one (included in :meth:`to_dict`).

    Example:
        >>> r = ClassificationReport.from_predictions([0, 1, 1], [0, 1, 0], num_classes=2)
        >>> r.per_class[0]
        {'name': '0', 'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666, 'support': 1}
    """

    confusion: list[list[int]]
    class_names: list[str] = field(default_factory=list)
    digits: int = 4
    loss: float | None = None

    def __post_init__(self) -> None:
        self.confusion = _as_confusion(self.confusion)
        c = len(self.confusion)
        self.class_names = [str(n) for n in self.class_names] or [str(i) for i in range(c)]
        if len(self.class_names) != c:
            raise ConfigError(f"class_names has {len(self.class_names)} names for {c} classes.")

    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        y_pred: Any,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        digits: int = 4,
    ) -> ClassificationReport:
        """Build the report from true and predicted classes (arrays, tensors or lists).

        Raises:
            ShapeError: ``y_true`` and ``y_pred`` differ in length or are not 1-D.
            DataError: a class is outside ``[0, num_classes)``.
        """
        t, p = (np.asarray(torch.as_tensor(v).cpu()).astype(np.int64) for v in (y_true, y_pred))
        if t.ndim != 1 or t.shape != p.shape:
            raise ShapeError(f"y_true and y_pred must be 1-D of equal length; got {t.shape} and {p.shape}.")
        for what, v in (("y_true", t), ("y_pred", p)):
            if v.size and (v.min() < 0 or v.max() >= num_classes):
                raise DataError(f"{what} has classes outside [0, {num_classes}).")
        cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
        return cls(cm.reshape(num_classes, num_classes).tolist(), list(class_names or []), digits)

    @property
    def _scores(self) -> dict[str, np.ndarray]:
        return per_class_scores(np.asarray(self.confusion))

    @property
    def support(self) -> int:
        """Total number of samples."""
        return int(np.asarray(self.confusion).sum())

    @property
    def accuracy(self) -> float:
        """Fraction of samples on the diagonal (0.0 with no samples)."""
        return float(safe_div(np.trace(np.asarray(self.confusion)), self.support))

    @property
    def per_class(self) -> list[dict[str, Any]]:
        """One dict per class: name, precision, recall, f1, support."""
        s = self._scores
        return [
            {
                "name": name,
                "precision": float(s["precision"][i]),
                "recall": float(s["recall"][i]),
                "f1": float(s["f1"][i]),
                "support": int(s["support"][i]),
            }
            for i, name in enumerate(self.class_names)
        ]

    def _average(self, average: str) -> dict[str, float | int]:
        s = self._scores
        out: dict[str, float | int] = {k: average_scores(s, k, average) for k in _SCORES}
        out["support"] = self.support
        return out

    @property
    def macro(self) -> dict[str, float | int]:
        """Unweighted mean over all classes: precision, recall, f1, support."""
        return self._average("macro")

    @property
    def weighted(self) -> dict[str, float | int]:
        """Mean weighted by support: precision, recall, f1, support."""
        return self._average("weighted")

    @property
    def micro(self) -> dict[str, float | int]:
        """Pooled counts (equal to accuracy for single-label data)."""
        return self._average("micro")

    def text(self, digits: int | None = None) -> str:
        """The table of sklearn's ``classification_report``, plus a ``micro avg`` line."""
        digits = self.digits if digits is None else digits
        width = max([len(n) for n in self.class_names] + [len("weighted avg"), digits])
        head = "{:>{width}s} " + " {:>9}" * 4
        row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
        lines = head.format("", "precision", "recall", "f1-score", "support", width=width)
        lines += "\n\n"
        for c in self.per_class:
            lines += row.format(
                c["name"], c["precision"], c["recall"], c["f1"], c["support"], width=width, digits=digits
            )
        lines += "\n"
        acc = "{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
        lines += acc.format("accuracy", "", "", self.accuracy, self.support, width=width, digits=digits)
        for heading, avg in (
            ("macro avg", self.macro),
            ("weighted avg", self.weighted),
            ("micro avg", self.micro),
        ):
            lines += row.format(
                heading,
                avg["precision"],
                avg["recall"],
                avg["f1"],
                avg["support"],
                width=width,
                digits=digits,
            )
        return lines.rstrip("\n")

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: accuracy, loss, per_class, macro, weighted, micro, confusion."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "support": self.support,
            "class_names": list(self.class_names),
            "per_class": self.per_class,
            "macro": self.macro,
            "weighted": self.weighted,
            "micro": self.micro,
            "confusion": [list(r) for r in self.confusion],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text (``NaN`` loss is written as ``null``)."""
        data = self.to_dict()
        if data["loss"] is not None and not np.isfinite(data["loss"]):
            data["loss"] = None
        return json.dumps(data, indent=indent)


def classification_report(
    confusion: Tensor | np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
    digits: int = 4,
) -> ClassificationReport:
    """Build a :class:`ClassificationReport` from a confusion matrix.

    Args:
        confusion: ``(C, C)`` counts, rows = true class, columns = predicted class.
        class_names: one name per class (default ``"0"``, ``"1"``, ...).
        digits: decimals in the text table.

    Returns:
        The report.

    Raises:
        ShapeError: the matrix is not square.
        ConfigError: negative or fractional counts, or the wrong number of names.

    Example:
        >>> classification_report([[1, 0], [0, 1]]).macro["f1"]
        1.0
    """
    return ClassificationReport(confusion, list(class_names or []), digits)
