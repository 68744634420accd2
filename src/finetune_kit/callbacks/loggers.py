"""Loggers: callbacks that write the epoch rows of a run to files.

Each logger rewrites its file from ``trainer.history`` at the end of every epoch, atomically,
so the file is always complete and parseable even if the run is killed, and columns that appear
mid-run (a new parameter group's learning rate after an unfreeze) get a header.

Example:
    >>> CSVLogger("metrics.csv").filename
    'metrics.csv'
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from finetune_kit.callbacks.base import Callback
from finetune_kit.errors import ConfigError
from finetune_kit.storage.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["CSVLogger", "JSONLogger", "TensorBoardLogger"]


class CSVLogger(Callback):
    """Write one row per epoch to ``metrics.csv`` in the run directory.

    Args:
        filename: file name inside the run directory.

    Example:
        >>> CSVLogger("epochs.csv").filename
        'epochs.csv'
    """

    main_process_only = True  # under DDP only rank 0 writes

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename

    def on_epoch_end(self, trainer: Trainer) -> None:
        rows = trainer.history.rows
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = text.getvalue().encode()
        with trainer.run_dir.writing(self.filename):
            atomic_write_bytes(trainer.run_dir.path(self.filename), lambda f: f.write(data))


class JSONLogger(Callback):
    """Write the epoch rows as a JSON list to ``metrics.json`` in the run directory.

    Args:
        filename: file name inside the run directory.

    Example:
        >>> JSONLogger().filename
        'metrics.json'
    """

    main_process_only = True  # under DDP only rank 0 writes

    def __init__(self, filename: str = "metrics.json") -> None:
        self.filename = filename

    def on_epoch_end(self, trainer: Trainer) -> None:
        data = json.dumps(trainer.history.rows, indent=1).encode()
        with trainer.run_dir.writing(self.filename):
            atomic_write_bytes(trainer.run_dir.path(self.filename), lambda f: f.write(data))


class TensorBoardLogger(Callback):
    """Write scalars for TensorBoard to ``<run>/tensorboard`` (needs the ``tensorboard`` package).

    Args:
        subdir: the directory inside the run directory.

    Example:
        >>> try:
        ...     logger = TensorBoardLogger()
        ... except ConfigError as error:  # tensorboard is an optional extra
        ...     print("pip install tensorboard" in str(error))
        ... else:
        ...     print(True)
        True

    Raises:
        ConfigError: tensorboard is not installed (``pip install tensorboard``).
    """

    main_process_only = True  # under DDP only rank 0 writes

    def __init__(self, subdir: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError(
                "TensorBoardLogger needs the tensorboard package: pip install tensorboard"
            ) from None
        self.subdir = subdir
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(trainer.run_dir.path(self.subdir)))

    def on_epoch_end(self, trainer: Trainer) -> None:
        row = trainer.history.rows[-1]
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
