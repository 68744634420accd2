"""The plateau scheduler: reduce the lr when a monitored metric stops improving.

:class:`PlateauScheduler` is ``ReduceLROnPlateau`` on top of
:class:`~finetune_kit.optim.schedulers.base.Scheduler`: it is stepped once per epoch with the monitored
metric (``interval == "epoch"``), its warmup counts in epochs, and its reduction is one factor
shared by all groups, so ``lr_mult`` ratios are kept. Build it by name with
:func:`finetune_kit.optim.schedulers.factory.create_scheduler`.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = PlateauScheduler(opt, epochs=5, steps_per_epoch=1, mode="max", patience=0)
    >>> for accuracy in (0.5, 0.6, 0.6):
    ...     s.step(accuracy)
    >>> s.interval, s.get_last_lr()
    ('epoch', [0.1])
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.optim.schedulers.base import Scheduler

__all__ = ["PlateauScheduler"]


class PlateauScheduler(Scheduler):
    """Reduce the lr when a metric stops improving, as ``ReduceLROnPlateau`` (per epoch).

    Call ``step(metric)`` at the end of every epoch. The reduction is one factor shared by all
    groups, so ``lr_mult`` ratios are kept.

    Args:
        mode: ``"min"`` (loss) or ``"max"`` (accuracy).
        factor: multiply the lr by this on a plateau, in ``(0, 1)``.
        patience: bad epochs tolerated before reducing.
        threshold: minimal improvement that counts.
        threshold_mode: ``"rel"`` or ``"abs"``.
        cooldown: epochs to wait after a reduction before counting bad epochs again.
        min_lr: lowest lr of a group with ``lr_mult=1``.
        eps: reductions smaller than this (in lr) are skipped.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = PlateauScheduler(opt, epochs=9, steps_per_epoch=1, patience=1)
        >>> for loss in (1.0, 0.9, 0.9, 0.9):
        ...     s.step(loss)
        >>> s.get_last_lr()
        [0.1]
    """

    interval = "epoch"

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        **lengths: Any,
    ) -> None:
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ConfigError(
                "plateau needs mode 'min' or 'max' and threshold_mode 'rel' or "
                f"'abs'; got {mode!r}, {threshold_mode!r}."
            )
        if not 0.0 < factor < 1.0 or patience < 0 or cooldown < 0 or min_lr < 0:
            raise ConfigError("plateau needs 0 < factor < 1 and non-negative patience, cooldown and min_lr.")
        self.mode, self.threshold_mode, self.threshold = mode, threshold_mode, threshold
        self.reduce_factor, self.patience, self.cooldown = factor, patience, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.scale = 1.0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        return self.scale

    def _is_better(self, value: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return value < (self.best * (1 - self.threshold) if rel else self.best - self.threshold)
        return value > (self.best * (1 + self.threshold) if rel else self.best + self.threshold)

    def step(self, metric: float | None = None) -> None:
        """End of an epoch: update the plateau state with ``metric``, then set the lrs.

        Raises:
            ConfigError: ``metric`` is None.
        """
        if metric is None:
            raise ConfigError(
                "The plateau scheduler needs the monitored metric: "
                "call step(metric) at the end of each epoch."
            )
        value = float(metric)
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new = max(self.scale * self.reduce_factor, self.min_lr / self.base_lr)
            if (self.scale - new) * self.base_lr > self.eps:
                self.scale = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        super().step()

    _STATE = ("scale", "best", "num_bad_epochs", "cooldown_counter")

    def state_dict(self) -> dict[str, Any]:
        """The tick count, base lr and plateau state (best, counters, current reduction)."""
        return {**super().state_dict(), **{k: getattr(self, k) for k in self._STATE}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and set the lrs."""
        for key in self._STATE:
            setattr(self, key, state[key])
        super().load_state_dict(state)
