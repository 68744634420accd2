"""The standard callbacks: early stopping, checkpoints, the NaN guard, the lr monitor, the timer.

Example:
    >>> import tempfile, finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
    ...                           train_size=40, test_size=8)
    >>> model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
    >>> stop = EarlyStopping("val_loss", patience=2, min_delta=0.01)
    >>> history = fk.Trainer(model, data, epochs=20, lr=1e-9, callbacks=[stop], verbosity=0,
    ...                      output_dir=tempfile.mkdtemp()).fit()
    >>> len(history), history.stop_reason  # doctest: +ELLIPSIS
    (3, 'early stopping: val_loss did not improve for 2 epochs (best ...)')
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from finetune_kit.callbacks.base import Callback
from finetune_kit.errors import ConfigError, TrainingError
from finetune_kit.registry import did_you_mean

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "NaNGuard", "Timer", "group_rates"]


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}.")


def _monitored(trainer: Trainer, monitor: str) -> float:
    metrics = trainer.state.metrics
    if monitor not in metrics:
        raise ConfigError(
            f"Monitored metric {monitor!r} is not logged.{did_you_mean(monitor, list(metrics))} "
            f"Logged metrics: {', '.join(sorted(metrics))}."
        )
    return float(metrics[monitor])


class EarlyStopping(Callback):
    """Stop when a monitored metric has not improved for ``patience`` epochs.

    Args:
        monitor: a metric of the epoch row, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        mode: ``"min"`` or ``"max"``.
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> stop = EarlyStopping("val_loss", patience=2, min_delta=0.01)  # lr too small to learn
        >>> history = fk.Trainer(net(), data, epochs=20, lr=1e-9, callbacks=[stop], verbosity=0,
        ...                      output_dir=tempfile.mkdtemp()).fit()
        >>> len(history), history.stop_reason  # doctest: +ELLIPSIS
        (3, 'early stopping: val_loss did not improve for 2 epochs (best ...)')
    """

    def __init__(
        self, monitor: str = "val_loss", mode: str = "min", patience: int = 3, min_delta: float = 0.0
    ) -> None:
        _check_mode(mode)
        if patience < 1:
            raise ConfigError(f"EarlyStopping patience must be >= 1, got {patience}.")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def on_validation_end(self, trainer: Trainer) -> None:
        value = _monitored(trainer, self.monitor)
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            trainer.request_stop(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best:.6g})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class ModelCheckpoint(Callback):
    """Save ``last.ckpt`` every epoch and keep the ``save_top_k`` best by a monitored metric.

    ``last.ckpt`` holds the whole training state (for resume). The best epochs are kept as
    ``epoch=E-<monitor>=V.ckpt`` holding their weights (and EMA weights) with what evaluation,
    export and prediction need, and ``best.ckpt`` is the best of them: the same file (a hard
    link where the file system allows it), so it costs no disk. Files that fall out of the top
    k are deleted (they are the run's own files).

    Args:
        monitor: metric to rank by (``None``: only ``last.ckpt``).
        mode: ``"min"`` or ``"max"``.
        save_top_k: how many best checkpoints to keep (0: none).
        save_last: write ``last.ckpt`` at the end of every epoch.
        every_n_steps: also write ``last.ckpt`` every this many optimizer steps inside an
            epoch, so a killed run loses at most that many steps (``None``: epoch ends only).

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> run = tempfile.mkdtemp()
        >>> keep_two = ModelCheckpoint(monitor="val_accuracy", mode="max", save_top_k=2)
        >>> _ = fk.Trainer(net(), data, epochs=3, callbacks=[keep_two], verbosity=0, output_dir=run).fit()
        >>> import pathlib
        >>> sorted(p.name for p in pathlib.Path(run).glob("*.ckpt"))  # doctest: +ELLIPSIS
        ['best.ckpt', 'epoch=...-val_accuracy=...ckpt', 'epoch=...-val_accuracy=...ckpt', 'last.ckpt']
    """

    def __init__(
        self,
        monitor: str | None = "val_loss",
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool = True,
        every_n_steps: int | None = None,
    ) -> None:
        _check_mode(mode)
        if save_top_k < 0:
            raise ConfigError(f"ModelCheckpoint save_top_k must be >= 0, got {save_top_k}.")
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(f"ModelCheckpoint every_n_steps must be >= 1, got {every_n_steps}.")
        self.monitor, self.mode, self.save_top_k, self.save_last = monitor, mode, save_top_k, save_last
        self.every_n_steps = every_n_steps
        self.kept: list[tuple[float, str]] = []  # (value, file name), best first
        self._saved_at_step = -1

    def on_train_batch_end(self, trainer: Trainer) -> None:
        step = trainer.state.global_step
        if (
            self.every_n_steps
            and step % self.every_n_steps == 0
            and step != self._saved_at_step
            and trainer.at_step_boundary()
        ):
            trainer.save_checkpoint("last.ckpt")
            self._saved_at_step = step

    def on_epoch_end(self, trainer: Trainer) -> None:
        # Top-k and best first, last.ckpt last: a run killed in between resumes from the
        # previous last.ckpt and redoes this epoch, so the top-k bookkeeping stays exact.
        self._update_top_k(trainer)
        if self.save_last:
            trainer.save_checkpoint("last.ckpt")

    def _update_top_k(self, trainer: Trainer) -> None:
        if self.monitor is None or self.save_top_k == 0:
            return
        value = _monitored(trainer, self.monitor)
        worst = self.kept[-1][0] if len(self.kept) >= self.save_top_k else None
        if worst is not None and not _improved(value, worst, self.mode, 0.0):
            return
        name = f"epoch={trainer.state.epoch}-{self.monitor}={value:.4f}.ckpt"
        ranked = sorted([*self.kept, (value, name)], key=lambda item: item[0], reverse=self.mode == "max")
        self.kept, dropped = ranked[: self.save_top_k], ranked[self.save_top_k :]
        trainer.save_checkpoint(name, weights_only=True)
        if self.kept[0][1] == name:
            trainer.link_checkpoint(name, "best.ckpt")
        for _, old in dropped:
            if trainer.is_main:
                trainer.run_dir.path(old).unlink(missing_ok=True)

    @property
    def best_path(self) -> str | None:
        """File name of the best checkpoint kept so far."""
        return self.kept[0][1] if self.kept else None

    def state_dict(self) -> dict[str, Any]:
        return {"kept": [list(item) for item in self.kept]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = [(float(v), str(n)) for v, n in state["kept"]]


class NaNGuard(Callback):
    """Stop with a clear error when the loss becomes NaN or infinite.

    Args:
        check_every: read the loss from the device every this many batches.

    The check reads the loss from the device once every ``check_every`` batches (the Trainer
    also checks the epoch's mean loss). The last good checkpoint on disk is never replaced by
    one taken after the fault, since the error leaves the loop before the next save.

    Example:
        >>> import tempfile, torch, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> class Broken(torch.nn.Module):  # its outputs are NaN: the loss is too
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = torch.nn.Linear(256, 2)
        ...     def forward(self, x):
        ...         return self.fc(x.flatten(1)) * float("nan")
        >>> fk.Trainer(Broken(), data, epochs=1, callbacks=[NaNGuard(check_every=1)], verbosity=0,
        ...            output_dir=tempfile.mkdtemp()).fit()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetune_kit.errors.TrainingError: The training loss became nan at epoch 0, batch 1 (step 1). ...
    """

    def __init__(self, check_every: int = 1) -> None:
        self.check_every = check_every

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if trainer.state.batch % self.check_every:
            return
        loss = trainer.state.last_loss
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"The training loss became {float(loss)} at epoch {trainer.state.epoch}, batch "
                f"{trainer.state.batch} (step {trainer.state.global_step}). The last good "
                f"checkpoint is kept in {trainer.run_dir.root}. Lower the learning rate, add "
                "grad_clip, or use precision='32'."
            )


class LearningRateMonitor(Callback):
    """Record the learning rate of each parameter group in the epoch row, named by its stages.

    The Trainer records ``lr``, the highest rate (the head's). When the groups train at
    different rates (discriminative learning rates), each rate also gets a column named after
    the stages that train at it: ``lr_stem``, ``lr_layer1``, ... (``lr_layer1+layer2`` when
    stages share a rate).

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> trainer = fk.Trainer(net(), data, epochs=1, lr=0.01, strategy="discriminative_lr",
        ...                      callbacks=[LearningRateMonitor()], verbosity=0,
        ...                      output_dir=tempfile.mkdtemp())
        >>> row = trainer.fit().rows[0]
        >>> [key for key in row if key.startswith("lr")]  # one column per rate, lowest first
        ['lr_conv1', 'lr_conv2', 'lr_fc1', 'lr_fc2', 'lr_head', 'lr']
        >>> row["lr_conv1"], row["lr_head"]
        (0.000625, 0.01)
    """

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        trainer.state.metrics.update(group_rates(trainer.optimizer.param_groups, trainer.plan))


def group_rates(groups: list[dict[str, Any]], plan: Any) -> dict[str, float]:
    """``lr_<stages>`` -> lr for each distinct rate of ``groups`` (empty when they all agree).

    Args:
        groups: the optimizer's parameter groups.
        plan: the run's freezing plan (its stages name the columns), or None: the groups'
            own names are used.

    Returns:
        Columns in stage order, input side first.

    Example:
        >>> import torch
        >>> w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
        >>> groups = [{"params": [w[0]], "lr": 0.01, "lr_mult": 0.1, "name": "decay lr_mult=0.1"},
        ...           {"params": w[1:], "lr": 0.1, "lr_mult": 1.0, "name": "decay"}]
        >>> group_rates(groups, None)
        {'lr_decay_lr_mult=0.1': 0.01, 'lr_decay': 0.1}
    """

    def mult(group: dict[str, Any]) -> float:
        return float(group.get("lr_mult", 1.0))

    rates = {mult(g): float(g["lr"]) for g in groups}
    if len(set(rates.values())) <= 1:
        return {}
    labels = {
        m: [str(g.get("name", "group")).replace(" ", "_") for g in groups if mult(g) == m] for m in rates
    }
    if plan is not None:
        stages = plan.stages()
        index = {id(p): i for i, stage in enumerate(stages) for p in stage.params.values()}
        for m in rates:
            found = {index[id(p)] for g in groups if mult(g) == m for p in g["params"] if id(p) in index}
            labels[m] = [stages[i].name for i in sorted(found)] or labels[m]
    return {"lr_" + "+".join(dict.fromkeys(labels[m])): rates[m] for m in sorted(rates, key=rates.get)}


class Timer(Callback):
    """Measure wall time and throughput: ``epoch_time`` and ``images_per_s`` in each epoch row.

    ``epoch_time`` is the whole epoch in seconds (training and validation); ``images_per_s``
    the training images per second over the epoch's training batches, all processes together.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=40, test_size=8)
        >>> def net():
        ...     return fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> timer = Timer()
        >>> trainer = fk.Trainer(net(), data, epochs=2, callbacks=[timer], verbosity=0,
        ...                      output_dir=tempfile.mkdtemp())
        >>> rows = trainer.fit().rows
        >>> timer.total > 0, all(row["epoch_time"] > 0 for row in rows)
        (True, True)
    """

    def __init__(self) -> None:
        self.fit_started = 0.0
        self.epoch_started = 0.0
        self.total = 0.0
        self._images = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.fit_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.epoch_started = time.perf_counter()
        self._images = 0

    def on_train_batch_end(self, trainer: Trainer) -> None:
        self._images += trainer.state.last_batch_size

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        seconds = max(time.perf_counter() - self.epoch_started, 1e-9)
        trainer.state.metrics["images_per_s"] = self._images * trainer.dist.world_size / seconds

    def on_validation_end(self, trainer: Trainer) -> None:
        trainer.state.metrics["epoch_time"] = time.perf_counter() - self.epoch_started

    def on_fit_end(self, trainer: Trainer) -> None:
        self.total = time.perf_counter() - self.fit_started
