"""The progress bar: tqdm bars for epochs and batches, running loss and throughput.

The running loss is read from the device only every ``trainer.config.train.log_every`` batches
(reading it forces the host to wait for the GPU), so the bar costs the loop nothing in between.
Bars are drawn only where they can redraw in place: a terminal or a notebook
(:func:`bars_wanted`); elsewhere (a file, a CI log) the run prints one plain line per epoch.

Example:
    >>> ProgressBar().leave
    False
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from finetune_kit.callbacks.base import Callback

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["ProgressBar", "bars_wanted"]


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm draws widgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def bars_wanted(progress: bool, verbosity: int) -> bool:
    """Whether a run draws progress bars: ``progress`` on, ``verbosity`` 1, a terminal or notebook.

    Args:
        progress: ``train.progress``.
        verbosity: ``train.verbosity`` (0 silent, 1 bars where they fit, 2 plain lines).

    Returns:
        True when standard error is a terminal (or this is a notebook) and both allow bars.

    Example:
        >>> bars_wanted(progress=False, verbosity=1), bars_wanted(progress=True, verbosity=2)
        (False, False)
    """
    if not progress or verbosity != 1:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) or _in_notebook()


class ProgressBar(Callback):
    """An epoch bar and a batch bar (tqdm) with running loss, learning rate and images/s.

    Args:
        leave: keep each finished batch bar on screen.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> net = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> bars = ProgressBar(leave=True)  # keep each epoch's finished batch bar on screen
        >>> history = fk.Trainer(net, data, epochs=2, callbacks=[bars], output_dir=tempfile.mkdtemp(),
        ...                      verbosity=0).fit()  # given explicitly, the bars are drawn (stderr)
        >>> bars.epoch_bar.n, bars.epoch_bar.total  # both epochs went by on the epoch bar
        (2, 2)
    """

    main_process_only = True  # under DDP only rank 0 writes

    def __init__(self, leave: bool = False) -> None:
        self.leave = leave
        self.epoch_bar = None
        self.batch_bar = None
        self._started = 0.0
        self._samples = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        cfg = trainer.config.train
        self.epoch_bar = tqdm(
            total=cfg.epochs,
            initial=trainer.state.epoch,
            desc="epochs",
            unit="epoch",
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        loader = trainer.loaders.train
        self.batch_bar = tqdm(
            total=len(loader),
            initial=trainer.state.batch,
            unit="batch",
            desc=f"epoch {trainer.state.epoch + 1}",
            leave=self.leave,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._started, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: Trainer) -> None:
        self._samples += trainer.state.last_batch_size
        self.batch_bar.update(1)
        if trainer.state.batch % trainer.config.train.log_every == 0:
            rate = self._samples / max(time.perf_counter() - self._started, 1e-9)
            self.batch_bar.set_postfix(
                loss=f"{trainer.running_loss():.4f}",
                lr=f"{max(g['lr'] for g in trainer.optimizer.param_groups):.3g}",
                img_s=f"{rate:.0f}",
            )

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.batch_bar.close()

    def on_epoch_end(self, trainer: Trainer) -> None:
        row = trainer.history.rows[-1]
        shown = {k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_loss", "val_accuracy")}
        self.epoch_bar.set_postfix(shown)
        self.epoch_bar.update(1)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.close()

    def on_exception(self, trainer: Trainer) -> None:
        for bar in (self.batch_bar, self.epoch_bar):
            if bar is not None:
                bar.close()
