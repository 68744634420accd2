"""Loggers: callbacks that write a run's epoch rows and its plain-text log.

Each metrics logger rewrites its file from ``trainer.history`` at the end of every epoch,
atomically, so the file is always complete and parseable even if the run is killed, and columns
that appear mid-run (a new parameter group's learning rate after an unfreeze) get a header.
:func:`create_loggers` makes them by the names of ``train.loggers``. :class:`TextLogger` writes
``train.log``: the start summary, one line per epoch and the end summary, also to the console.

Example:
    >>> CSVLogger("metrics.csv").filename
    'metrics.csv'
    >>> [type(cb).__name__ for cb in create_loggers(["csv", "json"])]
    ['CSVLogger', 'JSONLogger']
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from finetune_kit._version import __version__
from finetune_kit.callbacks.base import Callback
from finetune_kit.callbacks.run_log import end_summary, epoch_line, report_line, start_summary
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean
from finetune_kit.storage.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["LOGGERS", "CSVLogger", "JSONLogger", "TensorBoardLogger", "TextLogger", "create_loggers"]


class CSVLogger(Callback):
    """Write one row per epoch to ``metrics.csv`` in the run directory.

    Args:
        filename: file name inside the run directory.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> run = tempfile.mkdtemp()
        >>> _ = fk.Trainer(net(), data, epochs=2, callbacks=[CSVLogger("epochs.csv")], verbosity=0,
        ...                output_dir=run).fit()
        >>> lines = open(f"{run}/epochs.csv").read().splitlines()
        >>> len(lines), lines[0]
        (3, 'epoch,step,train_loss,train_accuracy,images_per_s,lr,val_loss,val_accuracy,epoch_time')
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
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> import json
        >>> run = tempfile.mkdtemp()
        >>> _ = fk.Trainer(net(), data, epochs=2, callbacks=[JSONLogger()], verbosity=0,
        ...                output_dir=run).fit()
        >>> [(row["epoch"], "val_accuracy" in row) for row in json.load(open(f"{run}/metrics.json"))]
        [(1, True), (2, True)]
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


LOGGERS: dict[str, type[Callback]] = {"csv": CSVLogger, "json": JSONLogger, "tensorboard": TensorBoardLogger}
"""The metric loggers by the names ``train.loggers`` takes."""


def create_loggers(names: Sequence[str]) -> list[Callback]:
    """The metric loggers named in ``names`` (``"csv"``, ``"json"``, ``"tensorboard"``), once each.

    Args:
        names: logger names, as in ``train.loggers``.

    Returns:
        One logger per distinct name, in the order given.

    Raises:
        ConfigError: an unknown name, or ``"tensorboard"`` without the tensorboard package.

    Example:
        >>> [type(cb).__name__ for cb in create_loggers(["json", "csv", "json"])]
        ['JSONLogger', 'CSVLogger']
    """
    made = []
    for name in dict.fromkeys(names):
        if name not in LOGGERS:
            raise ConfigError(
                f"Unknown logger {name!r}.{did_you_mean(str(name), list(LOGGERS))} "
                f"Loggers: {', '.join(LOGGERS)}."
            )
        made.append(LOGGERS[name]())
    return made


CONSOLE = ("all", "summary", "none")


class TextLogger(Callback):
    """Write the run's log as plain lines to ``train.log`` in the run directory and the console.

    The lines: a start summary (run directory, data, model, the weights it started from, the
    loop's settings, the trainable table), one line per epoch (losses, accuracies, learning
    rate, time, images/s), the end summary, and the test result. The file is appended to
    line by line, so a killed run keeps its log and a resumed run continues it. There are no
    progress-bar ``\\r`` fragments in it.

    Args:
        filename: the log file in the run directory (None: no file).
        console: what goes to standard error as well: ``"all"``, ``"summary"`` (the start and
            end summaries; progress bars show the epochs) or ``"none"``.

    Raises:
        ConfigError: an unknown ``console`` value.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> run = tempfile.mkdtemp()
        >>> _ = fk.Trainer(net(), data, epochs=1, callbacks=[TextLogger(console="none")],
        ...                output_dir=run).fit()
        >>> print(open(f"{run}/train.log").read())  # doctest: +ELLIPSIS
        finetune_kit ..., fit started ...
        run directory: ...
        epoch 1/1  train loss ... acc ...  val loss ... acc ...
        fit done: 1 epochs in ...s; best val_accuracy ... at epoch 1
        <BLANKLINE>
    """

    main_process_only = True  # under DDP only rank 0 writes

    def __init__(self, filename: str | None = "train.log", *, console: str = "all") -> None:
        if console not in CONSOLE:
            raise ConfigError(
                f"TextLogger console must be one of {', '.join(map(repr, CONSOLE))}, got {console!r}."
            )
        self.filename, self.console = filename, console
        self._started = 0.0

    def _emit(
        self, trainer: Trainer, lines: list[str], *, per_epoch: bool = False, echo: bool = True
    ) -> None:
        if self.filename is not None and trainer.run_dir is not None:
            text = "".join(f"{line}\n" for line in lines)
            path = trainer.run_dir.path(self.filename)
            with trainer.run_dir.writing(self.filename), path.open("a", encoding="utf-8") as f:
                f.write(text)
        if echo and (self.console == "all" or (self.console == "summary" and not per_epoch)):
            for line in lines:
                print(line, file=sys.stderr)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._started = time.perf_counter()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._emit(trainer, [f"finetune_kit {__version__}, fit started {stamp}", *start_summary(trainer)])

    def on_epoch_end(self, trainer: Trainer) -> None:
        line = epoch_line(trainer.history.rows[-1], epochs=trainer.config.train.epochs)
        self._emit(trainer, [line], per_epoch=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._emit(trainer, [end_summary(trainer, time.perf_counter() - self._started)])

    def on_test_end(self, trainer: Trainer) -> None:
        # The console already shows the full report (test(print_report=True)).
        self._emit(trainer, [report_line(trainer.state.test_report)], echo=False)

    def on_exception(self, trainer: Trainer) -> None:
        error = trainer.state.exception
        self._emit(trainer, [f"fit stopped by {type(error).__name__}: {error}"], echo=False)
