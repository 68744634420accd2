"""PNG figures of a run: learning curves, the confusion matrix, and the worst mistakes.

matplotlib is an optional dependency (``pip install finetune-kit[plots]``). It is imported only
when a figure is drawn, and figures are rendered with the Agg backend through
``matplotlib.figure.Figure`` directly: no ``pyplot``, no global backend switch, so plotting from
a training run never disturbs a notebook's own figures.

The plain functions work without a Trainer: :func:`plot_history` (epoch rows -> loss, accuracy
and learning-rate curves), :func:`plot_confusion`, :func:`plot_images` (an image grid with
titles) and :func:`top_losses` (the highest-loss samples of a loader). :class:`PlotCallback`
draws them into the run directory: ``plots/curves.png`` as epochs finish, and
``plots/confusion.png`` and ``plots/worst.png`` when :meth:`Trainer.test` runs.

Example:
    >>> import tempfile, pathlib
    >>> rows = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.0, "lr": 0.1},
    ...         {"epoch": 2, "train_loss": 0.8, "val_loss": 0.9, "lr": 0.05}]
    >>> out = plot_history(rows, pathlib.Path(tempfile.mkdtemp()) / "curves.png")
    >>> out.read_bytes()[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.callbacks import Callback
from finetune_kit.errors import ConfigError, OutputDirError, ShapeError

if TYPE_CHECKING:
    from finetune_kit.runtime import Precision
    from finetune_kit.trainer import Trainer

__all__ = [
    "PNG_SIGNATURE",
    "PlotCallback",
    "TopLosses",
    "denormalize",
    "plot_confusion",
    "plot_history",
    "plot_images",
    "require_matplotlib",
    "top_losses",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first eight bytes of every PNG file."""

MISSING_MATPLOTLIB = (
    "Plots need matplotlib, which is not installed. Install it with "
    "`pip install finetune-kit[plots]` (or `pip install matplotlib`), or leave PlotCallback out."
)
DPI = 100


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises:
        ConfigError: matplotlib is missing; the message says how to install it.

    Example:
        >>> require_matplotlib()
    """
    _new_figure_class()


def _new_figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None

    def make(width: float, height: float) -> Any:
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
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
    """``lr_g0, lr_g1, ...`` when recorded (in group order), else ``lr``."""
    groups = sorted({k for row in rows for k in row if k.startswith("lr_g") and k[4:].isdigit()},
                    key=lambda k: int(k[4:]))
    return groups or ["lr"]


def plot_history(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw loss, accuracy and learning rate per epoch side by side, as a PNG.

    Args:
        rows: epoch rows as in ``History.rows``: ``epoch`` and any of ``train_loss``,
            ``val_loss``, ``train_accuracy``, ``val_accuracy``, ``lr`` and ``lr_g<i>`` (one
            curve per optimizer group). Missing or non-finite values are left out.
        path: the PNG file to write (parent directories are created).

    Returns:
        ``path``.

    Raises:
        ConfigError: no rows, or matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> rows = [{"epoch": 1, "train_accuracy": 0.5, "lr_g0": 0.1, "lr_g1": 0.01}]
        >>> plot_history(rows, tempfile.mkdtemp() + "/h.png").suffix
        '.png'
    """
    if not rows:
        raise ConfigError("plot_history got no epoch rows; train for at least one epoch first.")
    fig = _new_figure_class()(12.0, 3.6)
    from matplotlib.ticker import MaxNLocator  # importable: the figure was made

    panels = [("loss", ["train_loss", "val_loss"]),
              ("accuracy", ["train_accuracy", "val_accuracy"]),
              ("learning rate", _lr_keys(rows))]
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


# -------------------------------------------------------------- confusion
def _as_matrix(confusion: Any) -> torch.Tensor:
    if isinstance(confusion, torch.Tensor):
        matrix = confusion.detach().to("cpu", torch.float64)
    else:
        matrix = torch.as_tensor(confusion, dtype=torch.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ShapeError(
            f"confusion must be a square (C, C) matrix; got shape {tuple(matrix.shape)}."
        )
    return matrix


def plot_confusion(confusion: Any, class_names: Sequence[str], path: str | Path) -> Path:
    """Draw a confusion matrix as a PNG: cells coloured by row share, labelled with counts.

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
    matrix = _as_matrix(confusion)
    c = matrix.shape[0]
    if len(class_names) != c:
        raise ShapeError(f"confusion is {c}x{c} but {len(class_names)} class names were given; "
                         "pass one name per row, in label order.")
    share = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)  # recall per row
    side = min(4.0 + 0.45 * c, 24.0)
    fig = _new_figure_class()(side + 1.5, side)
    ax = fig.subplots()
    image = ax.imshow(share.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ticks = list(range(c))
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix ({int(matrix.sum())} images)")
    if c <= 30:
        size = "small" if c <= 12 else "xx-small"
        for i in range(c):
            for j in range(c):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", color=color,
                        fontsize=size)
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
        raise ShapeError(f"denormalize needs (N, C, H, W) images and C values of mean and std; got "
                         f"shape {tuple(images.shape)}, {len(mean)} means, {len(std)} stds.")
    x = images.detach().to("cpu", torch.float32)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x * s + m).mul_(255).round_().clamp_(0, 255).to(torch.uint8)


def _as_uint8_batch(images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ShapeError(f"plot_images needs (N, C, H, W) images with C = 1 or 3; got shape "
                         f"{tuple(batch.shape)}.")
    if batch.dtype == torch.uint8:
        return batch.cpu()
    if not batch.is_floating_point():
        raise ShapeError(f"plot_images needs uint8 or float images in [0, 1]; got {batch.dtype}.")
    return batch.detach().cpu().float().mul(255).round_().clamp_(0, 255).to(torch.uint8)


def plot_images(images: torch.Tensor | Sequence[torch.Tensor], titles: Sequence[str],
                path: str | Path, *, ncols: int | None = None) -> Path:
    """Draw images in a grid with a title under each, as a PNG.

    Args:
        images: ``(N, C, H, W)`` with C = 1 (drawn in gray) or 3: uint8, or float in ``[0, 1]``
            (clipped). Normalised loader batches go through :func:`denormalize` first.
        titles: ``N`` titles (may hold newlines).
        path: the PNG file to write.
        ncols: images per row (default: up to 8).

    Returns:
        ``path``.

    Raises:
        ShapeError: bad image shape or dtype, or a title count that is not ``N``.
        ConfigError: no images, a bad ``ncols``, or matplotlib is missing.
        OutputDirError: the file cannot be written.

    Example:
        >>> import tempfile, torch
        >>> imgs = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
        >>> plot_images(imgs, ["a", "b", "c"], tempfile.mkdtemp() + "/g.png").name
        'g.png'
    """
    batch = _as_uint8_batch(images)
    n = batch.shape[0]
    if n == 0:
        raise ConfigError("plot_images got no images.")
    if len(titles) != n:
        raise ShapeError(f"plot_images got {n} images but {len(titles)} titles; give one each.")
    if ncols is not None and ncols < 1:
        raise ConfigError(f"ncols must be >= 1, got {ncols}.")
    cols = ncols or min(n, 8)
    rows = math.ceil(n / cols)
    lines = max(str(t).count("\n") + 1 for t in titles)
    fig = _new_figure_class()(1.9 * cols, (1.9 + 0.18 * lines) * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, title in zip(axes, batch, titles, strict=False):  # spare axes stay blank
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(str(title), fontsize="small")
    return _save(fig, path)


# ------------------------------------------------------------- top losses
@dataclass(frozen=True, eq=False)
class TopLosses:
    """The highest-loss samples of a loader, highest first (all tensors on the CPU).

    Attributes:
        images: ``(k, C, H, W)`` the samples as the model saw them (normalised float).
        targets: ``(k,)`` true class indices.
        predictions: ``(k,)`` predicted class indices (argmax).
        confidences: ``(k,)`` softmax probability of the predicted class.
        losses: ``(k,)`` cross-entropy loss of each sample, descending.
        positions: ``(k,)`` positions in the loader's order (the split's index for an
            unshuffled, single-process loader such as ``loaders.test``).

    Example:
        >>> t = torch.tensor
        >>> worst = TopLosses(torch.zeros(1, 1, 2, 2), t([1]), t([0]), t([0.9]), t([2.5]), t([7]))
        >>> len(worst), worst.positions.tolist()
        (1, [7])
    """

    images: torch.Tensor
    targets: torch.Tensor
    predictions: torch.Tensor
    confidences: torch.Tensor
    losses: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return int(self.losses.shape[0])

    def titles(self, class_names: Sequence[str]) -> list[str]:
        """One title per sample: true name, predicted name with its probability, loss.

        Example:
            >>> t = torch.tensor
            >>> TopLosses(t([]), t([1]), t([0]), t([0.9]), t([2.5]), t([7])).titles(["a", "b"])
            ['true: b\\npred: a (0.90)\\nloss 2.50']
        """
        return [f"true: {class_names[int(t)]}\npred: {class_names[int(p)]} ({float(c):.2f})\n"
                f"loss {float(loss):.2f}" for t, p, c, loss in
                zip(self.targets, self.predictions, self.confidences, self.losses, strict=True)]


@torch.no_grad()
def top_losses(model: nn.Module, loader: Any, k: int = 16, *,
               precision: Precision | None = None) -> TopLosses:
    """The ``k`` samples of ``loader`` with the highest cross-entropy loss under ``model``.

    One pass over ``loader.iter_epoch(0)`` with the model in eval mode (its mode is restored
    afterwards); only ``k`` candidates are kept on the device at any time.

    Args:
        model: the classifier, on the loader's device.
        loader: a finetune_kit loader (``DeviceLoader`` / ``TorchLoader``, e.g.
            ``trainer.loaders.test``) yielding normalised ``(x, y)`` batches.
        k: how many samples to return (fewer when the loader holds fewer).
        precision: run the forward pass under this precision's autocast (e.g.
            ``trainer.precision``); None runs in the model's dtype.

    Returns:
        :class:`TopLosses`, highest loss first.

    Raises:
        ConfigError: ``k`` is not a positive integer, or the loader yields no samples.

    Example:
        >>> import torch
        >>> from finetune_kit.data import DeviceLoader, ImageTensorDataset
        >>> ds = ImageTensorDataset(torch.zeros(5, 1, 4, 4, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 0, 1, 1]), ["a", "b"])
        >>> loader = DeviceLoader(ds, batch_size=2, mean=(0.0,), std=(1.0,))
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> worst = top_losses(net, loader, k=3)
        >>> len(worst), bool(worst.losses[0] >= worst.losses[-1])
        (3, True)
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"top_losses needs k >= 1 (an integer); got {k!r}.")
    was_training = model.training
    model.eval()
    kept: list[torch.Tensor] | None = None  # images, targets, preds, confidences, losses, positions
    seen = 0
    try:
        for x, y in loader.iter_epoch(0):
            with precision.autocast(x.device) if precision is not None else nullcontext():
                logits = model(x)
            logits = logits.float()
            losses = F.cross_entropy(logits, y, reduction="none")
            confidences, predictions = logits.softmax(dim=1).max(dim=1)
            positions = torch.arange(seen, seen + len(y), device=y.device)
            seen += len(y)
            batch = [x.float(), y, predictions, confidences, losses, positions]
            if kept is not None:
                batch = [torch.cat(pair) for pair in zip(kept, batch, strict=True)]
            order = batch[4].topk(min(k, len(batch[4]))).indices
            kept = [t[order] for t in batch]
    finally:
        model.train(was_training)
    if kept is None:
        raise ConfigError("top_losses: the loader yielded no samples.")
    return TopLosses(*(t.cpu() for t in kept))


# --------------------------------------------------------------- callback
class PlotCallback(Callback):
    """Draw a run's figures into ``<run dir>/plots/``.

    * ``curves.png``: loss, accuracy and learning rate per epoch, redrawn every
      ``every_n_epochs`` epochs and at the end of fit (a stopped run still has its curves);
    * at :meth:`Trainer.test`: ``confusion.png`` (the test confusion matrix) and
      ``worst.png`` (the ``worst`` highest-loss test images with true and predicted names).
      Finding them takes one more pass over the test set (set ``worst=0`` to skip it).

    Args:
        curves: draw the learning curves.
        confusion: draw the confusion matrix at test end.
        worst: how many worst test images to show (0: no grid).
        every_n_epochs: redraw the curves every this many epochs.
        directory: where to write instead of ``<run dir>/plots`` (needed when testing with a
            Trainer that has no run directory, i.e. one that never ran ``fit``).

    Raises:
        ConfigError: matplotlib is missing (the message says how to install it), or a bad
            ``worst`` / ``every_n_epochs``.

    Example:
        >>> PlotCallback(worst=8).worst
        8
    """

    main_process_only = True  # under DDP only rank 0 draws (the worst images: of its shard)

    def __init__(self, *, curves: bool = True, confusion: bool = True, worst: int = 16,
                 every_n_epochs: int = 1, directory: str | Path | None = None) -> None:
        require_matplotlib()
        if not isinstance(worst, int) or worst < 0:
            raise ConfigError(f"PlotCallback worst must be an integer >= 0, got {worst!r}.")
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ConfigError(f"PlotCallback every_n_epochs must be >= 1, got {every_n_epochs!r}.")
        self.curves, self.confusion, self.worst = curves, confusion, worst
        self.every_n_epochs = every_n_epochs
        self.directory = Path(directory) if directory is not None else None
        self._drawn_rows = 0

    def _path(self, trainer: Trainer, name: str) -> Path:
        if self.directory is not None:
            return self.directory / name
        if trainer.run_dir is None:
            raise ConfigError(
                "PlotCallback has nowhere to write: this Trainer has no run directory (fit() was "
                "not called). Pass PlotCallback(directory='some/dir') or call fit() first."
            )
        return trainer.run_dir.path(f"plots/{name}")

    def _draw_curves(self, trainer: Trainer) -> None:
        rows = trainer.history.rows
        if self.curves and rows and len(rows) != self._drawn_rows:
            plot_history(rows, self._path(trainer, "curves.png"))
            self._drawn_rows = len(rows)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.state.epoch % self.every_n_epochs == 0:
            self._draw_curves(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._draw_curves(trainer)

    def on_test_end(self, trainer: Trainer) -> None:
        names = [str(n) for n in trainer.data.class_names]
        if self.confusion:
            plot_confusion(trainer.state.test_report.confusion, names,
                           self._path(trainer, "confusion.png"))
        if self.worst and trainer.loaders.test is not None:
            worst = top_losses(trainer.eval_model, trainer.loaders.test, self.worst,
                               precision=trainer.precision)
            images = denormalize(worst.images, trainer.data.mean, trainer.data.std)
            plot_images(images, worst.titles(names), self._path(trainer, "worst.png"))
