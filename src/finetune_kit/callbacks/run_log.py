"""The lines of a run's plain-text log: the start summary, one line per epoch, the end summary.

:class:`~finetune_kit.callbacks.loggers.TextLogger` writes these lines to ``train.log`` in the run
directory and, depending on ``train.verbosity``, to the console. They are plain text (no
progress-bar ``\\r`` fragments), so a log file or a CI log reads the same as a terminal.

Example:
    >>> row = {"epoch": 2, "train_loss": 0.41, "train_accuracy": 0.85, "val_loss": 0.39,
    ...        "val_accuracy": 0.86, "lr": 0.0123, "epoch_time": 12.3, "images_per_s": 4870.0}
    >>> epoch_line(row, epochs=4)
    'epoch 2/4  train loss 0.4100 acc 0.8500  val loss 0.3900 acc 0.8600  lr 0.0123  12.3s  4,870 img/s'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from finetune_kit.models.info import INFO_ATTR, ModelInfo
from finetune_kit.models.load import load_report_of

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["end_summary", "epoch_line", "report_line", "start_summary", "weights_line"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lr_text(row: Mapping[str, Any]) -> str:
    """``lr 0.01``, or the range ``lr 0.000625..0.01`` when parameter groups differ."""
    rates = [v for k, v in row.items() if k.startswith("lr_") and _number(v)]
    if "lr" not in row:
        return ""
    high = float(row["lr"])
    low = min([high, *rates])
    return f"lr {high:.3g}" if low == high else f"lr {low:.3g}..{high:.3g}"


def epoch_line(row: Mapping[str, Any], *, epochs: int) -> str:
    """One plain line for an epoch row of the history.

    Args:
        row: an epoch row (``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
            ``val_accuracy``, ``lr`` and ``lr_<stages>``, ``epoch_time``, ``images_per_s``);
            what is missing is left out.
        epochs: the planned number of epochs.

    Returns:
        The line, without a newline.

    Example:
        >>> epoch_line({"epoch": 1, "train_loss": 2.0, "lr": 0.1, "lr_stem": 0.01}, epochs=3)
        'epoch 1/3  train loss 2.0000  lr 0.01..0.1'
    """
    parts = [f"epoch {row.get('epoch', '?')}/{epochs}"]
    for split in ("train", "val"):
        loss, acc = row.get(f"{split}_loss"), row.get(f"{split}_accuracy")
        cells = [f"loss {loss:.4f}" if _number(loss) else "", f"acc {acc:.4f}" if _number(acc) else ""]
        if any(cells):
            parts.append(f"{split} " + " ".join(c for c in cells if c))
    if lr := _lr_text(row):
        parts.append(lr)
    if _number(row.get("epoch_time")):
        parts.append(f"{row['epoch_time']:.1f}s")
    if _number(row.get("images_per_s")):
        parts.append(f"{row['images_per_s']:,.0f} img/s")
    return "  ".join(parts)


def weights_line(model: Any) -> str:
    """What weights the model started from, in one line.

    Example:
        >>> from finetune_kit.models import create_model
        >>> weights_line(create_model("lenet", num_classes=2))
        'weights: none (random initialisation)'
    """
    report = load_report_of(model)
    return "weights: none (random initialisation)" if report is None else report.summary()


def _count(dataset: Any) -> str:
    return "0" if dataset is None else f"{len(dataset):,}"


def start_summary(trainer: Trainer) -> list[str]:
    """The lines that open a run's log: where, what data, which model and weights, how."""
    cfg, data = trainer.config, trainer.data
    params = sum(p.numel() for p in trainer.model.parameters())
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    size = "x".join(str(s) for s in (data.in_channels, *data.image_size))
    optim = cfg.optim
    found = " (found by the lr range test)" if trainer.lr_search is not None else ""
    lines = [
        f"run directory: {trainer.run_dir.root}",
        f"data: {data.name}, {_count(data.train)} train / {_count(data.val)} val / "
        f"{_count(data.test)} test images, {data.num_classes} classes, {size}",
        f"model: {_model_name(trainer.model)}, {params:,} parameters ({trainable:,} trainable)",
        weights_line(trainer.model),
        f"loop: {cfg.train.epochs} epochs of {len(trainer.loaders.train)} batches of "
        f"{cfg.loader.batch_size}, {optim.optimizer} lr {optim.lr:.4g}{found}, scheduler "
        f"{optim.scheduler}, device {trainer.device}, precision {cfg.train.precision}, "
        f"{trainer.loaders.kind} loader",
    ]
    if trainer.state.global_step:
        lines.append(f"resuming at epoch {trainer.state.epoch + 1}, step {trainer.state.global_step}")
    return [*lines, *trainer.plan.summary().table().splitlines()]


def _model_name(model: Any) -> str:
    info = getattr(model, INFO_ATTR, None)
    return info.name if isinstance(info, ModelInfo) else type(model).__name__


def end_summary(trainer: Trainer, seconds: float) -> str:
    """The line that closes a fit: epochs, time, the best validation accuracy, why it stopped."""
    rows = trainer.history.rows
    parts = [f"fit done: {len(rows)} epochs in {seconds:.1f}s"]
    scored = [r for r in rows if _number(r.get("val_accuracy"))]
    if scored:
        best = max(scored, key=lambda r: r["val_accuracy"])
        parts.append(f"best val_accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}")
    if trainer.state.stop_reason:
        parts.append(f"stopped: {trainer.state.stop_reason}")
    return "; ".join(parts)


def report_line(report: Any) -> str:
    """The test result in one line.

    Example:
        >>> from types import SimpleNamespace
        >>> report_line(SimpleNamespace(support=100, loss=0.31, accuracy=0.9))
        'test: 100 images, loss 0.3100, accuracy 0.9000'
    """
    return f"test: {report.support:,} images, loss {report.loss:.4f}, accuracy {report.accuracy:.4f}"
