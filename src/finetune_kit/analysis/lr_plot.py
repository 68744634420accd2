"""The learning-rate finder's figure: loss against learning rate, like fastai's ``lr_find`` plot.

The curve is drawn on a log lr axis and stops where the loss climbs back above its starting
value: the steps after that (the divergent tail, where the loss explodes) would stretch the
loss axis so far that the useful part of the curve becomes a flat line at the bottom. The
suggested learning rate is marked with a red dot on the curve.

Example:
    >>> import tempfile
    >>> lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    >>> visible_steps([2.3, 2.1, 1.2, 2.0, 900.0])
    4
    >>> plot_lr_find(lrs, [2.3, 2.1, 1.2, 2.0, 900.0], tempfile.mkdtemp() + "/lr.png",
    ...              suggestion=1e-3).name
    'lr.png'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from finetune_kit.analysis.figures import _new_figure_class, _save
from finetune_kit.errors import ConfigError, ShapeError

__all__ = ["plot_lr_find", "visible_steps"]


def visible_steps(losses: Sequence[float]) -> int:
    """How many leading steps to draw: up to the first one after the minimum that is above the start.

    Args:
        losses: the smoothed loss of each step.

    Returns:
        The number of steps to draw (all of them when the loss never climbs back).

    Example:
        >>> visible_steps([2.0, 1.0, 0.5, 1.5, 2.5, 40.0]), visible_steps([2.0, 1.0, 0.9])
        (4, 3)
    """
    finite = [v if math.isfinite(v) else math.inf for v in losses]
    if not finite:
        return 0
    lowest = min(range(len(finite)), key=finite.__getitem__)
    for i in range(lowest + 1, len(finite)):
        if finite[i] > finite[0]:
            return i
    return len(finite)


def _nearest(lrs: Sequence[float], lr: float) -> int:
    return min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i]) - math.log(lr)))


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    path: str | Path,
    *,
    suggestion: float | None = None,
    steepest: float | None = None,
) -> Path:
    """Draw the smoothed loss against the learning rate (log axis), as a PNG.

    Args:
        lrs: the learning rate of each step (increasing).
        losses: the smoothed loss of each step.
        path: the PNG file to write.
        suggestion: the suggested lr (a red dot on the curve, named in the legend).
        steepest: the lr of steepest descent (a dotted line), if wanted too.

    Returns:
        ``path``.

    Raises:
        ShapeError: ``lrs`` and ``losses`` differ in length.
        ConfigError: fewer than 2 points, a learning rate that is not > 0, or matplotlib is
            missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> plot_lr_find([1e-3, 1e-2, 1e-1], [1.0, 0.5, 0.9], tempfile.mkdtemp() + "/a.png").suffix
        '.png'
    """
    if len(lrs) != len(losses):
        raise ShapeError(f"plot_lr_find got {len(lrs)} learning rates but {len(losses)} losses.")
    if len(lrs) < 2 or min(lrs) <= 0:
        raise ConfigError("plot_lr_find needs at least 2 steps with learning rates > 0.")
    n = max(visible_steps(losses), 2)
    xs, ys = list(lrs[:n]), list(losses[:n])
    fig = _new_figure_class()(6.4, 4.0)
    ax = fig.subplots()
    ax.plot(xs, ys, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (smoothed)")
    hidden = len(lrs) - n
    ax.set_title("lr range test" + (f" ({hidden} divergent steps not drawn)" if hidden else ""))
    ax.grid(alpha=0.3, which="both")
    if steepest is not None:
        ax.axvline(steepest, linestyle=":", color="gray", label=f"steepest {steepest:.2e}")
    if suggestion is not None:
        i = _nearest(xs, suggestion)
        ax.plot([xs[i]], [ys[i]], "o", color="tab:red", markersize=8, label=f"suggestion {suggestion:.2e}")
    if suggestion is not None or steepest is not None:
        ax.legend()
    return _save(fig, path)
