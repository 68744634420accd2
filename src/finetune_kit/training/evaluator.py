"""The Evaluator: a trained model and its data, with ``evaluate``, ``test`` and ``predict``.

The :class:`~finetune_kit.Trainer` is an Evaluator that can also fit; a saved run is evaluated
with a plain Evaluator (:func:`~finetune_kit.training.from_config.evaluate_checkpoint`).

Example:
    >>> import finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
    ...                           train_size=8, test_size=8)
    >>> model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
    >>> report = Evaluator(model, data).test(print_report=False)
    >>> report.support
    8
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import torch
from torch import nn

from finetune_kit.callbacks import Callback, CallbackList
from finetune_kit.config import RunConfig, route_options
from finetune_kit.data import DataBundle, check_compatible
from finetune_kit.data.loaders import Loaders
from finetune_kit.errors import ConfigError
from finetune_kit.inference.predict import Predictions, predict
from finetune_kit.metrics import ClassificationReport
from finetune_kit.optim import ModelEma
from finetune_kit.runtime import PrecisionMode, resolve_device
from finetune_kit.runtime.distributed import DistEnv
from finetune_kit.runtime.threads import ThreadPlan, plan_threads, use_threads
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.training import setup
from finetune_kit.training.evaluation import evaluate_model, report_from_values, save_report
from finetune_kit.training.state import History, TrainState

__all__ = ["Evaluator"]


class Evaluator:
    """Evaluate a model on a :class:`~finetune_kit.data.DataBundle`: loss, report, predictions.

    Args:
        model: the network, sized for ``data`` (classes and channels).
        data: the datasets.
        config: the run configuration (its ``loader`` and ``train`` sections are used).
        callbacks: callbacks fired at ``test_end``.
        **options: keys of the loader/optim/finetune/train sections, as for the Trainer.

    Raises:
        ShapeError: the model was built for another number of classes or channels.
        ConfigError: an unknown option.

    Example:
        >>> import finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=28,
        ...                           train_size=6, test_size=6)
        >>> net = fk.create_model("convnet", num_classes=3, in_channels=1, seed=1)
        >>> sorted(Evaluator(net, data, device="cpu").evaluate("test"))
        ['accuracy', 'loss']
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataBundle,
        *,
        config: RunConfig | None = None,
        callbacks: list[Callback] | None = None,
        **options: Any,
    ) -> None:
        self.config = route_options(config or RunConfig(), options)
        info = getattr(model, "finetune_kit_info", None)
        if info is not None:  # a model built for other data fails here, before any work
            check_compatible(data, in_channels=info.in_channels, num_classes=info.num_classes)
        self.model = model
        self.data = data
        self.dist = DistEnv.from_environ()
        # Under DDP only rank 0 shows progress and writes logs and plots.
        self.callbacks = CallbackList(
            [cb for cb in callbacks or [] if self.dist.is_main or not cb.main_process_only]
        )
        self.state = TrainState()
        self.history = History()
        self.device = resolve_device(self.config.train.device)
        if self.dist.is_distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        self.precision = PrecisionMode.resolve(self.config.train.precision, self.device)
        self.run_dir: RunDir | None = None
        self.loaders: Loaders | None = None  # made by fit(), or by the first evaluation
        self.ema: ModelEma | None = None
        self.thread_plan: ThreadPlan | None = None  # chosen when the first run or test starts

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0 under DDP; always in a single process)."""
        return self.dist.is_main

    def cpu_threads(self) -> contextlib.AbstractContextManager:
        """torch's CPU threads for a block of work (``train.threads``), restored after it.

        The count is chosen once per Trainer/Evaluator (see
        :func:`~finetune_kit.runtime.threads.plan_threads`) and, on the CPU, printed in one
        line with the precision when progress is shown.
        """
        if self.thread_plan is None:
            self.thread_plan = plan_threads(self.config.train.threads)
            train = self.config.train
            if self.device.type == "cpu" and train.progress and train.verbosity > 0 and self.is_main:
                auto = " (auto)" if self.precision.requested == "auto" else ""
                print(
                    f"{self.thread_plan.describe()}; precision {self.precision.name}{auto}", file=sys.stderr
                )
        return use_threads(self.thread_plan.threads)

    def _prepare_model_and_loaders(self) -> None:
        """Move the model to the device (channels_last on CUDA by default) and make the loaders."""
        channels_last = setup.place_model(self.model, self.device, self.config.train.channels_last)
        self.loaders = setup.build_loaders(self.data, self.config, self.device, self.dist, channels_last)

    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluation uses: the EMA copy when ``ema`` is set, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _evaluate_loader(self, loader) -> dict[str, Any]:
        cfg = self.config.train
        return evaluate_model(
            self.eval_model,
            loader,
            num_classes=self.data.num_classes,
            precision=self.precision,
            device=self.device,
            metrics=cfg.metrics,
            tta=cfg.tta,
        )

    def _ensure_ready(self) -> None:
        if self.loaders is None:  # evaluating weights without fitting (e.g. a loaded checkpoint)
            self._prepare_model_and_loaders()

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Loss and accuracy of the current weights on ``"val"`` or ``"test"``.

        Returns:
            ``{"loss": ..., "accuracy": ...}``.
        """
        self._ensure_ready()
        loader = {"val": self.loaders.val, "test": self.loaders.test}.get(split)
        if loader is None:
            raise ConfigError(
                f"evaluate(split={split!r}): use 'val' or 'test' (and a val_fraction > 0 for 'val')."
            )
        with self.cpu_threads():
            values = self._evaluate_loader(loader)
        return {k: v for k, v in values.items() if isinstance(v, (int, float))}

    def test(self, *, save: bool = True, print_report: bool = True) -> ClassificationReport:
        """Evaluate on the test set and build the full classification report.

        The report (accuracy, per-class precision/recall/F1/support, confusion matrix) is
        printed and saved as ``report.txt`` and ``report.json`` in the run directory.

        Returns:
            The :class:`~finetune_kit.metrics.report.ClassificationReport`.
        """
        self._ensure_ready()
        if self.loaders.test is None:
            raise ConfigError(
                f"Dataset {self.data.name!r} has no test split; pass test=(images, "
                "labels) to create_datasets, or use evaluate('val')."
            )
        with self.cpu_threads():
            values = self._evaluate_loader(self.loaders.test)
        report = report_from_values(values, self.data.class_names)
        if save and self.run_dir is not None and self.is_main:
            save_report(report, self.run_dir)
        if print_report and self.is_main:
            print(f"\nTest set: {report.support} images, loss {report.loss:.4f}\n{report.text()}")
        self.state.test_report = report
        self.callbacks.fire("test_end", self)
        return report

    def predict(self, images: Any, *, top_k: int = 5, batch_size: int | None = None) -> Predictions:
        """Class predictions for image files, uint8 tensors or a dataset split.

        Images are preprocessed as the evaluation data is (resize, normalisation of the
        dataset's preset) and classified by :attr:`eval_model`.

        Args:
            images: paths of PNG/JPEG files, a uint8 tensor ``(N, C, H, W)``, or a dataset.
            top_k: how many classes :meth:`Predictions.table` shows per image.
            batch_size: images per forward pass (default: the evaluation batch size).

        Returns:
            :class:`~finetune_kit.inference.predict.Predictions`: class indices, names, probabilities.

        Example:
            >>> import finetune_kit as fk, tempfile, torch
            >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=28,
            ...                           train_size=30, test_size=6)
            >>> trainer = fk.Trainer(fk.create_model("convnet", num_classes=3, in_channels=1),
            ...                      data, progress=False, output_dir=tempfile.mkdtemp())
            >>> trainer.predict(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).probabilities.shape
            torch.Size([2, 3])
        """
        self._ensure_ready()
        size = batch_size or setup.eval_batch_size(self.config.loader)
        return predict(
            self.eval_model, images, meta=self.data.meta(), device=self.device, top_k=top_k, batch_size=size
        )
