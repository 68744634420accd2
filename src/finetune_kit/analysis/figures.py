"""PNG figures of a run: learning curves and image grids (with heatmaps), and how they are drawn.

matplotlib is an optional dependency (``pip install finetune-kit[plots]``). It is imported only
when a figure is drawn, and figures are rendered with the Agg backend through
``matplotlib.figure.Figure`` directly: no ``pyplot``, no global backend switch, so plotting from
a training run never disturbs a notebook's own figures.

The functions work without a Trainer: :func:`plot_history` (epoch rows -> loss, accuracy and
learning-rate curves) and :func:`plot_images` (an image grid with titles, optionally with a
heatmap over each image; :func:`~finetune_kit.analysis.top_losses.top_losses` finds the
highest-loss samples of a loader to show). The confusion matrix and per-class accuracy are in
:mod:`finetune_kit.analysis.class_figures`, the lr finder's curve in
:mod:`finetune_kit.analysis.lr_plot`. :class:`~finetune_kit.PlotCallback`
(:mod:`finetune_kit.callbacks.plots`) draws them into the run directory's ``plots/``.

Example:
    >>> import tempfile, pathlib
    >>> rows = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.0, "lr": 0.1},
    ...         {"epoch": 2, "train_loss": 0.8, "val_loss": 0.9, "lr": 0.05}]
    >>> out = plot_history(rows, pathlib.Path(tempfile.mkdtemp()) / "curves.png")
    >>> out.read_bytes()[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from finetune_kit.errors import ConfigError, OutputDirError, ShapeError

__all__ = [
    "PNG_SIGNATURE",
    "denormalize",
    "plot_history",
    "plot_images",
    "require_matplotlib",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first eight bytes of every PNG file."""

MISSING_MATPLOTLIB = (
    "Plots need matplotlib, which is not installed. Install it with "
    "`pip install finetune-kit[plots]` (or `pip install matplotlib`), or leave PlotCallback out."
)
DPI = 100


def require_matplotlib() -> None:
    """Check that matplotlib is installed, without importing it (that waits for the first figure).

    Raises:
        ConfigError: matplotlib is missing; the message says how to install it.

    Example:
        >>> require_matplotlib()
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(MISSING_MATPLOTLIB)


def _new_figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None

    def make(width: float, height: float, layout: str | None = "constrained") -> Any:
        # layout=None (margins set by hand) draws about twice as fast as "constrained"
        fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
        FigureCanvasAgg(fig)  # render with Agg, whatever pyplot's backend is
        return fig

    return make


def _save(fig: Any, path: str | Path) -> Path:
    """Render ``fig`` to PNG and write it to ``path`` (parents created)."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    except OSError as exc:
        raise OutputDirError(
            f"Could not write the figure {path}: {exc.strerror or exc}. Check the directory's "
            "permissions and free space, or choose another path."
        ) from None
    return path


# ---------------------------------------------------------------- history
def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of ``key`` over the rows that have a finite number for it."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


def _lr_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-stage rates ``lr_<stages>`` when recorded (``lr`` is the highest of them), else ``lr``."""
    return list(dict.fromkeys(k for row in rows for k in row if k.startswith("lr_"))) or ["lr"]


def plot_history(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw loss, accuracy and learning rate per epoch side by side, as a PNG.

    Args:
        rows: epoch rows as in ``History.rows``: ``epoch`` and any of ``train_loss``,
            ``val_loss``, ``train_accuracy``, ``val_accuracy``, ``lr`` and ``lr_<stages>`` (one
            curve per learning rate). Missing or non-finite values are left out.
        path: the PNG file to write (parent directories are created).

    Returns:
        ``path``.

    Raises:
        ConfigError: no rows, or matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> rows = [{"epoch": 1, "train_accuracy": 0.5, "lr": 0.1, "lr_stem": 0.01}]
        >>> plot_history(rows, tempfile.mkdtemp() + "/h.png").suffix
        '.png'
    """
    if not rows:
        raise ConfigError("plot_history got no epoch rows; train for at least one epoch first.")
    fig = _new_figure_class()(12.0, 3.6)
    from matplotlib.ticker import MaxNLocator  # importable: the figure was made

    panels = [
        ("loss", ["train_loss", "val_loss"]),
        ("accuracy", ["train_accuracy", "val_accuracy"]),
        ("learning rate", _lr_keys(rows)),
    ]
    for ax, (title, keys) in zip(fig.subplots(1, 3), panels, strict=True):
        drawn = False
        for key in keys:
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.legend(fontsize="small")
        if title == "learning rate" and all(y > 0 for k in keys for y in _series(rows, k)[1]):
            ax.set_yscale("log")
    return _save(fig, path)


# ----------------------------------------------------------------- images
def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``(x / 255 - mean) / std``: normalised float images back to uint8.

    Args:
        images: ``(N, C, H, W)`` normalised float images (as loaders yield them).
        mean: per-channel mean, as ``DataBundle.mean``.
        std: per-channel standard deviation, as ``DataBundle.std``.

    Returns:
        ``(N, C, H, W)`` uint8 on the CPU.

    Raises:
        ShapeError: ``mean``/``std`` do not have one value per channel.

    Example:
        >>> import torch
        >>> denormalize(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1), [0.5], [0.5]).flatten().tolist()
        [0, 255]
    """
    if images.ndim != 4 or len(mean) != images.shape[1] or len(std) != images.shape[1]:
        raise ShapeError(
            f"denormalize needs (N, C, H, W) images and C values of mean and std; got "
            f"shape {tuple(images.shape)}, {len(mean)} means, {len(std)} stds."
        )
    x = images.detach().to("cpu", torch.float32)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x * s + m).mul_(255).round_().clamp_(0, 255).to(torch.uint8)


def _as_uint8_batch(images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ShapeError(
            f"plot_images needs (N, C, H, W) images with C = 1 or 3; got shape {tuple(batch.shape)}."
        )
    if batch.dtype == torch.uint8:
        return batch.cpu()
    if not batch.is_floating_point():
        raise ShapeError(f"plot_images needs uint8 or float images in [0, 1]; got {batch.dtype}.")
    return batch.detach().cpu().float().mul(255).round_().clamp_(0, 255).to(torch.uint8)


def _as_heatmaps(heatmaps: torch.Tensor | None, batch: torch.Tensor) -> torch.Tensor | None:
    if heatmaps is None:
        return None
    heat = heatmaps.detach().cpu().float()
    if heat.ndim != 3 or heat.shape[0] != batch.shape[0] or tuple(heat.shape[1:]) != tuple(batch.shape[2:]):
        raise ShapeError(
            f"heatmaps must be (N, H, W) = {(batch.shape[0], *batch.shape[2:])} to match the images; "
            f"got shape {tuple(heat.shape)}."
        )
    return heat


def plot_images(
    images: torch.Tensor | Sequence[torch.Tensor],
    titles: Sequence[str],
    path: str | Path,
    *,
    ncols: int | None = None,
    heatmaps: torch.Tensor | None = None,
) -> Path:
    """Draw images in a grid with a title under each, as a PNG, optionally with heatmaps over them.

    Args:
        images: ``(N, C, H, W)`` with C = 1 (drawn in gray) or 3: uint8, or float in ``[0, 1]``
            (clipped). Normalised loader batches go through :func:`denormalize` first.
        titles: ``N`` titles (may hold newlines).
        path: the PNG file to write.
        ncols: images per row (default: up to 8).
        heatmaps: ``(N, H, W)`` values in ``[0, 1]`` drawn over the images in a "jet" colour
            map, half transparent (e.g. :func:`finetune_kit.explain` heatmaps).

    Returns:
        ``path``.

    Raises:
        ShapeError: bad image shape or dtype, a title count that is not ``N``, or heatmaps of
            another shape.
        ConfigError: no images, a bad ``ncols``, or matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile, torch
        >>> imgs = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
        >>> plot_images(imgs, ["a", "b", "c"], tempfile.mkdtemp() + "/g.png").name
        'g.png'
        >>> heat = torch.rand(3, 8, 8)
        >>> plot_images(imgs, ["a", "b", "c"], tempfile.mkdtemp() + "/h.png", heatmaps=heat).name
        'h.png'
    """
    batch = _as_uint8_batch(images)
    n = batch.shape[0]
    if n == 0:
        raise ConfigError("plot_images got no images.")
    if len(titles) != n:
        raise ShapeError(f"plot_images got {n} images but {len(titles)} titles; give one each.")
    if ncols is not None and ncols < 1:
        raise ConfigError(f"ncols must be >= 1, got {ncols}.")
    heat = _as_heatmaps(heatmaps, batch)
    cols = ncols or min(n, 8)
    rows = math.ceil(n / cols)
    lines = max(str(t).count("\n") + 1 for t in titles)
    cell_w, cell_h = 1.9, 1.9 + 0.18 * lines
    fig = _new_figure_class()(cell_w * cols, cell_h * rows, layout=None)
    title_share = (0.08 + 0.16 * lines) / cell_h  # of each cell's height, above its image
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - title_share / rows, wspace=0.05)
    fig.subplots_adjust(hspace=title_share / (1 - title_share))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for i, (ax, image, title) in enumerate(zip(axes, batch, titles, strict=False)):  # spare axes stay blank
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.permute(1, 2, 0).numpy())
        if heat is not None:
            ax.imshow(heat[i].numpy(), cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0, interpolation="bilinear")
        ax.set_title(str(title), fontsize="small")
    return _save(fig, path)
