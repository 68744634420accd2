"""Figures per class: the confusion matrix (counts and row-normalised) and per-class accuracy.

Both take a confusion matrix of counts (rows: true class, columns: predicted class, as
``ClassificationReport.confusion``) and the class names; they need matplotlib, as every figure
of :mod:`finetune_kit.analysis.figures`.

Example:
    >>> import tempfile
    >>> out = plot_per_class([[8, 2], [1, 9]], ["cat", "dog"], tempfile.mkdtemp() + "/p.png")
    >>> out.read_bytes()[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from finetune_kit.analysis.figures import PNG_SIGNATURE, _new_figure_class, _save
from finetune_kit.errors import ShapeError

__all__ = ["PNG_SIGNATURE", "per_class_accuracy", "plot_confusion", "plot_per_class"]


def _as_matrix(confusion: Any, class_names: Sequence[str]) -> torch.Tensor:
    if isinstance(confusion, torch.Tensor):
        matrix = confusion.detach().to("cpu", torch.float64)
    else:
        matrix = torch.as_tensor(confusion, dtype=torch.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ShapeError(f"confusion must be a square (C, C) matrix; got shape {tuple(matrix.shape)}.")
    c = matrix.shape[0]
    if len(class_names) != c:
        raise ShapeError(
            f"confusion is {c}x{c} but {len(class_names)} class names were given; "
            "pass one name per row, in label order."
        )
    return matrix


def per_class_accuracy(confusion: Any) -> torch.Tensor:
    """The share of each true class predicted right (the recall of each class).

    Args:
        confusion: ``(C, C)`` counts, rows = true class.

    Returns:
        ``(C,)`` float64; a class without samples gets NaN.

    Raises:
        ShapeError: the matrix is not square.

    Example:
        >>> per_class_accuracy([[3, 1], [0, 0]]).tolist()
        [0.75, nan]
    """
    matrix = _as_matrix(confusion, ["?"] * len(confusion))
    totals = matrix.sum(dim=1)
    return torch.where(totals > 0, matrix.diagonal() / totals.clamp(min=1), torch.nan)


def _draw_matrix(
    fig: Any, ax: Any, values: torch.Tensor, labels: torch.Tensor, names: list[str], title: str
) -> None:
    c = values.shape[0]
    image = ax.imshow(values.numpy(), cmap="Blues", vmin=0.0, vmax=float(values.max()) or 1.0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = list(range(c))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if c > 30:
        return
    size = "small" if c <= 12 else "xx-small"
    limit = float(values.max()) / 2
    for i in range(c):
        for j in range(c):
            color = "white" if values[i, j] > limit else "black"
            ax.text(j, i, labels[i][j], ha="center", va="center", color=color, fontsize=size)


def plot_confusion(confusion: Any, class_names: Sequence[str], path: str | Path) -> Path:
    """Draw the confusion matrix twice, side by side: counts, and normalised by true class.

    The normalised panel divides each row by its total, so its diagonal is the per-class
    accuracy (recall) and a class with few samples is as visible as a large one.

    Args:
        confusion: ``(C, C)`` counts (list of lists, array or tensor), rows = true class,
            columns = predicted class (as ``ClassificationReport.confusion``).
        class_names: ``C`` names in label order.
        path: the PNG file to write.

    Returns:
        ``path``.

    Raises:
        ShapeError: the matrix is not square or does not match the number of class names.
        ConfigError: matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> plot_confusion([[5, 1], [2, 7]], ["cat", "dog"], tempfile.mkdtemp() + "/c.png").name
        'c.png'
    """
    matrix = _as_matrix(confusion, class_names)
    names = [str(n) for n in class_names]
    share = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    side = min(3.0 + 0.4 * matrix.shape[0], 20.0)
    fig = _new_figure_class()(2 * side + 2.0, side)
    left, right = fig.subplots(1, 2)
    counts = [[f"{int(v)}" for v in row] for row in matrix]
    shares = [[f"{v:.2f}" for v in row] for row in share]
    _draw_matrix(fig, left, matrix, counts, names, f"counts ({int(matrix.sum())} images)")
    _draw_matrix(fig, right, share, shares, names, "normalised by true class")
    return _save(fig, path)


def plot_per_class(confusion: Any, class_names: Sequence[str], path: str | Path) -> Path:
    """Draw each class's accuracy as a bar, with the overall accuracy as a line, as a PNG.

    Args:
        confusion: ``(C, C)`` counts, rows = true class.
        class_names: ``C`` names in label order.
        path: the PNG file to write.

    Returns:
        ``path``.

    Raises:
        ShapeError: the matrix is not square or does not match the number of class names.
        ConfigError: matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> plot_per_class([[5, 1], [2, 7]], ["cat", "dog"], tempfile.mkdtemp() + "/p.png").name
        'p.png'
    """
    matrix = _as_matrix(confusion, class_names)
    accuracy = per_class_accuracy(matrix).nan_to_num(0.0)
    overall = float(matrix.diagonal().sum() / matrix.sum().clamp(min=1))
    c = matrix.shape[0]
    fig = _new_figure_class()(min(3.0 + 0.5 * c, 24.0), 4.0)
    ax = fig.subplots()
    order = list(range(c))
    bars = ax.bar(order, accuracy.tolist(), color="tab:blue")
    ax.axhline(overall, color="tab:red", linestyle="--")
    if c <= 30:
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in accuracy.tolist()], fontsize="x-small")
    ax.set_xticks(order, [str(n) for n in class_names], rotation=45, ha="right")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("accuracy (recall)")
    ax.set_title(f"accuracy per class (dashed: overall, {overall:.3f})")
    return _save(fig, path)
