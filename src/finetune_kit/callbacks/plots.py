"""PlotCallback: draw a run's figures into its run directory as the Trainer goes.

The learning curves are redrawn as epochs finish; the confusion matrix and the worst test
images are drawn when :meth:`Trainer.test <finetune_kit.Trainer.test>` runs. The figures
themselves come from :mod:`finetune_kit.analysis.figures` and :mod:`finetune_kit.analysis.top_losses`.

Example:
    >>> callback = PlotCallback(worst=0, every_n_epochs=5)
    >>> callback.curves, callback.confusion, callback.worst
    (True, True, 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finetune_kit.analysis.figures import (
    denormalize,
    plot_confusion,
    plot_history,
    plot_images,
    require_matplotlib,
)
from finetune_kit.analysis.top_losses import top_losses
from finetune_kit.callbacks.base import Callback
from finetune_kit.errors import ConfigError

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["PlotCallback"]


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

    def __init__(
        self,
        *,
        curves: bool = True,
        confusion: bool = True,
        worst: int = 16,
        every_n_epochs: int = 1,
        directory: str | Path | None = None,
    ) -> None:
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
            plot_confusion(trainer.state.test_report.confusion, names, self._path(trainer, "confusion.png"))
        if self.worst and trainer.loaders.test is not None:
            worst = top_losses(
                trainer.eval_model, trainer.loaders.test, self.worst, precision=trainer.precision
            )
            images = denormalize(worst.images, trainer.data.mean, trainer.data.std)
            plot_images(images, worst.titles(names), self._path(trainer, "worst.png"))
