"""What the loop knows as it runs (:class:`TrainState`) and what it leaves behind (:class:`History`).

Example:
    >>> h = History()
    >>> h.append({"epoch": 1, "val_accuracy": 0.8}); h.append({"epoch": 2, "val_accuracy": 0.9})
    >>> h["val_accuracy"], h.best("val_accuracy", mode="max")["epoch"]
    ([0.8, 0.9], 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["EpochTotals", "History", "TrainState"]


@dataclass
class TrainState:
    """The loop's position and latest numbers, read by callbacks.

    Attributes:
        epoch: the current epoch, 0-based (after the last epoch: ``epochs``).
        batch: batches finished in the current epoch.
        global_step: optimizer steps taken since the start of the run.
        skipped_steps: optimizer steps the fp16 gradient scaler skipped (inf/NaN gradients).
        metrics: the current epoch's row as it fills (``train_loss``, ``val_accuracy`` ...).
        last_loss: the last batch's loss, a device tensor (read it sparingly: it syncs).
        last_batch_size: images in the last batch.
        stop_reason: why the loop was asked to stop, or ``None``.
        test_report: the report of the last :meth:`Trainer.test` call.
        exception: the exception leaving the loop, for ``on_exception``.
    """

    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    skipped_steps: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    last_loss: torch.Tensor | None = None
    last_batch_size: int = 0
    stop_reason: str | None = None
    test_report: Any = None
    exception: BaseException | None = None


class History:
    """One row (a dict) per finished epoch, as returned by :meth:`Trainer.fit`.

    Args:
        rows: epoch rows to start from (a resumed run's history).

    Example:
        >>> History([{"epoch": 1, "train_loss": 0.5}])["train_loss"]
        [0.5]

    Attributes:
        rows: the epoch rows, oldest first.
        interrupted: the run stopped on a signal and can be resumed.
        stop_reason: why the run stopped early, or ``None``.
    """

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.interrupted = False
        self.stop_reason: str | None = None

    def append(self, row: dict[str, Any]) -> None:
        """Add an epoch row."""
        self.rows.append(dict(row))

    def __getitem__(self, key: str) -> list[Any]:
        keys = {k for row in self.rows for k in row}
        if key not in keys:
            raise ConfigError(
                f"No metric {key!r} in the history.{did_you_mean(key, sorted(keys))} "
                f"Recorded: {', '.join(sorted(keys))}."
            )
        return [row.get(key) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def best(self, key: str, mode: str = "max") -> dict[str, Any]:
        """The row with the best value of ``key`` (``mode`` ``"max"`` or ``"min"``)."""
        values = self[key]
        pick = max if mode == "max" else min
        index = values.index(pick(v for v in values if v is not None))
        return self.rows[index]

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else {}
        return f"History({len(self)} epochs, last={last})"


class EpochTotals:
    """The training epoch's running sums (loss, correct, seen), kept on the device.

    Adding a batch launches a few kernels and never waits for the device; the sums are read
    only when asked (progress bar, end of epoch), and saved in mid-epoch checkpoints.

    Example:
        >>> totals = EpochTotals(torch.device("cpu"))
        >>> totals.add(torch.tensor(0.5), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> totals.means()
        (0.5, 0.5)
    """

    def __init__(self, device: torch.device, sums: torch.Tensor | None = None) -> None:
        zeros = torch.zeros(3, dtype=torch.float64, device=device)
        self.sums = zeros if sums is None else sums.to(device=device, dtype=torch.float64)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: its mean loss, its logits and its class-index targets."""
        n = torch.full((), float(targets.shape[0]), dtype=torch.float64, device=self.sums.device)
        correct = (logits.argmax(dim=1) == targets).sum().double()
        self.sums += torch.stack([loss.detach().double() * n, correct, n])

    def means(self, reduce: Any = None) -> tuple[float, float]:
        """(mean loss, accuracy) so far; ``reduce`` sums a copy over processes first (DDP)."""
        sums = self.sums.clone() if reduce is None else reduce(self.sums.clone())
        loss_sum, correct, seen = sums.tolist()
        return loss_sum / max(seen, 1.0), correct / max(seen, 1.0)

    def state(self) -> torch.Tensor:
        """The sums on the CPU, for a checkpoint."""
        return self.sums.cpu()
