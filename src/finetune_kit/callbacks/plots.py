"""PlotCallback: draw a run's figures into its run directory as the Trainer goes.

The learning curves are drawn as epochs finish and at the end of fit; the confusion matrix, the
per-class accuracy and the worst test images (with Grad-CAM heatmaps of what the model looked
at) are drawn when :meth:`Trainer.test <finetune_kit.Trainer.test>` runs. The figures come from
:mod:`finetune_kit.analysis`, the heatmaps from :func:`finetune_kit.explain`. The Trainer adds
this callback by itself when ``train.plots`` is on (the default when matplotlib is installed).

Example:
    >>> callback = PlotCallback(worst=0, every_n_epochs=5)
    >>> callback.curves, callback.confusion, callback.worst
    (True, True, 0)
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from finetune_kit.analysis import (
    denormalize,
    plot_confusion,
    plot_history,
    plot_images,
    plot_per_class,
    top_losses,
)
from finetune_kit.analysis.figures import require_matplotlib
from finetune_kit.callbacks.base import Callback
from finetune_kit.errors import ConfigError
from finetune_kit.inference.gradcam import explain, find_target_layer

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["PlotCallback", "plots_available"]

log = logging.getLogger("finetune_kit.callbacks")


def plots_available() -> bool:
    """Whether matplotlib is installed (then ``train.plots`` is on by default).

    Example:
        >>> isinstance(plots_available(), bool)
        True
    """
    return importlib.util.find_spec("matplotlib") is not None


class PlotCallback(Callback):
    """Draw a run's figures into ``<run dir>/plots/``.

    * ``curves.png``: loss, accuracy and learning rate per epoch. Redrawn every
      ``every_n_epochs`` epochs, at most once every ``min_interval`` seconds (a figure takes a
      fraction of a second to draw), and always at the end of fit, so a stopped run still has
      its curves;
    * at :meth:`Trainer.test`: ``confusion.png`` (the test confusion matrix, counts and
      normalised by true class), ``per_class.png`` (each class's accuracy) and ``worst.png``
      (the ``worst`` highest-loss test images with true and predicted names and, with
      ``heatmaps``, the Grad-CAM heat of the predicted class over each). Finding them takes
      one more pass over the test set (set ``worst=0`` to skip it).

    Args:
        curves: draw the learning curves.
        confusion: draw the confusion matrix and the per-class accuracy at test end.
        worst: how many worst test images to show (0: no grid).
        heatmaps: overlay Grad-CAM heatmaps on the worst images; a model without a
            convolutional stage gets the plain grid (the log says so).
        every_n_epochs: redraw the curves every this many epochs.
        min_interval: seconds that must pass between two redraws inside a fit.
        directory: where to write instead of ``<run dir>/plots`` (needed when testing with a
            Trainer that has no run directory, i.e. one that never ran ``fit``).

    Raises:
        ConfigError: matplotlib is missing (the message says how to install it), or a bad
            ``worst`` / ``every_n_epochs`` / ``min_interval``.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> import pathlib
        >>> run = tempfile.mkdtemp()
        >>> trainer = fk.Trainer(net(), data, epochs=1, callbacks=[PlotCallback(worst=4)], verbosity=0,
        ...                      output_dir=run)
        >>> _ = trainer.fit(); _ = trainer.test(print_report=False)
        >>> sorted(p.name for p in pathlib.Path(run, "plots").iterdir())
        ['confusion.png', 'curves.png', 'per_class.png', 'worst.png']
    """

    main_process_only = True  # under DDP only rank 0 draws (the worst images: of its shard)

    def __init__(
        self,
        *,
        curves: bool = True,
        confusion: bool = True,
        worst: int = 16,
        heatmaps: bool = True,
        every_n_epochs: int = 1,
        min_interval: float = 30.0,
        directory: str | Path | None = None,
    ) -> None:
        require_matplotlib()
        if not isinstance(worst, int) or worst < 0:
            raise ConfigError(f"PlotCallback worst must be an integer >= 0, got {worst!r}.")
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ConfigError(f"PlotCallback every_n_epochs must be >= 1, got {every_n_epochs!r}.")
        if not min_interval >= 0:
            raise ConfigError(f"PlotCallback min_interval must be >= 0 seconds, got {min_interval!r}.")
        self.curves, self.confusion, self.worst, self.heatmaps = curves, confusion, worst, heatmaps
        self.every_n_epochs, self.min_interval = every_n_epochs, min_interval
        self.directory = Path(directory) if directory is not None else None
        self._drawn_rows = 0
        self._drawn_at = 0.0

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
            self._drawn_rows, self._drawn_at = len(rows), time.monotonic()

    def on_fit_start(self, trainer: Trainer) -> None:
        self._drawn_at = time.monotonic()  # the first redraw waits min_interval too

    def on_epoch_end(self, trainer: Trainer) -> None:
        due = time.monotonic() - self._drawn_at >= self.min_interval
        if trainer.state.epoch % self.every_n_epochs == 0 and due:
            self._draw_curves(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._draw_curves(trainer)

    def on_test_end(self, trainer: Trainer) -> None:
        names = [str(n) for n in trainer.data.class_names]
        confusion = trainer.state.test_report.confusion
        if self.confusion:
            plot_confusion(confusion, names, self._path(trainer, "confusion.png"))
            plot_per_class(confusion, names, self._path(trainer, "per_class.png"))
        if self.worst and trainer.loaders.test is not None:
            self._draw_worst(trainer, names)

    def _draw_worst(self, trainer: Trainer, names: list[str]) -> None:
        model = trainer.eval_model
        worst = top_losses(model, trainer.loaders.test, self.worst, precision=trainer.precision)
        heat = None
        if self.heatmaps:
            inputs = worst.images.to(trainer.device)
            if find_target_layer(model, inputs[:1]) is None:
                log.warning("worst.png without heatmaps: the model has no convolutional stage to explain")
            else:  # what the model looked at for the class it (wrongly) predicted
                heat = explain(model, inputs, targets=worst.predictions).heatmaps
        images = denormalize(worst.images, trainer.data.mean, trainer.data.std)
        plot_images(images, worst.titles(names), self._path(trainer, "worst.png"), heatmaps=heat)
