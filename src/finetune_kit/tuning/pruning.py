"""Pruning: report the validation metric of every epoch to the study, stop a hopeless trial cleanly.

:class:`PruningCallback` is an ordinary :class:`~finetune_kit.Callback`. After each validation
it reports the metric to the Optuna trial (the step is the epoch number) and asks the study's
pruner whether to go on; when the pruner says stop, it asks the Trainer to stop after this
epoch, so the trial's run directory ends like any finished run (``last.ckpt``, ``metrics.csv``)
and its ``trial.json`` says it was pruned.

Under torchrun only rank 0 talks to the study; its decision is sent to every rank so they stop
at the same epoch.

Example:
    >>> class Trial:  # a stand-in for an optuna.Trial
    ...     def report(self, value, step): self.last = (value, step)
    ...     def should_prune(self): return True
    >>> callback = PruningCallback(Trial(), "val_accuracy")
    >>> callback.pruned_at is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from finetune_kit.callbacks import Callback
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

if TYPE_CHECKING:
    from finetune_kit.training import Trainer

__all__ = ["PruningCallback"]


def _single_process(decision: bool | None) -> bool | None:
    return decision


class PruningCallback(Callback):
    """Report ``metric`` after every validation; stop the run when the pruner says so.

    Args:
        trial: the ``optuna.Trial`` of this run (None on the non-zero ranks of a DDP trial).
        metric: the logged metric to report, e.g. ``"val_accuracy"``.
        share: under DDP, sends rank 0's decision to every rank (default: one process).

    Attributes:
        pruned_at: the epoch (1-based) after which the pruner stopped the run, or None.
        last_value: the last value reported.
    """

    def __init__(
        self,
        trial: Any,
        metric: str,
        share: Callable[[bool | None], bool | None] = _single_process,
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.share = share
        self.pruned_at: int | None = None
        self.last_value: float | None = None

    def on_validation_end(self, trainer: Trainer) -> None:
        """Report this epoch's value, then stop the run after this epoch if the pruner says so."""
        metrics = trainer.state.metrics
        if self.metric not in metrics:
            logged = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise ConfigError(
                f"The trial does not log {self.metric!r}.{did_you_mean(self.metric, logged)} "
                f"Logged after each epoch: {', '.join(logged)}."
            )
        epoch = int(metrics["epoch"])
        self.last_value = float(metrics[self.metric])
        decision = None
        if self.trial is not None:
            if math.isfinite(self.last_value):
                self.trial.report(self.last_value, step=epoch)
            decision = bool(self.trial.should_prune())
        if self.share(decision) and epoch < trainer.config.train.epochs:
            self.pruned_at = epoch
            trainer.request_stop(f"pruned after epoch {epoch}: {self.metric} = {self.last_value:.4f}")
