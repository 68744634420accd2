"""The scheduler base class: ``lr = base_lr * lr_mult * warmup(t) * schedule(t)`` per group.

A :class:`Scheduler` counts its ``step()`` calls ``t`` and sets, for every parameter group,
``lr = base_lr * group["lr_mult"] * warmup(t) * schedule(t)``. ``base_lr`` is the optimizer's
``defaults["lr"]``, read once. Because each step recomputes every group's lr from its
``"lr_mult"``, a group added mid-run (after an unfreeze) is scheduled like the others.

Warmup is linear and multiplies the schedule (as ``torch.optim.lr_scheduler.ChainedScheduler``
of ``LinearLR`` and the schedule does): ``warmup(t) = s + (1 - s) * min(t / W, 1)`` with
``s = warmup_start_factor`` and ``W = warmup_epochs * steps_per_epoch`` (rounded) steps. A
subclass with ``interval = "epoch"`` is stepped once per epoch and counts its warmup in epochs.
The built-in schedules are listed in :mod:`finetune_kit.optim.schedulers.factory`.

Example:
    >>> import torch
    >>> class Halving(Scheduler):
    ...     def schedule(self, t):
    ...         return 0.5 ** t
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = Halving(opt, epochs=1, steps_per_epoch=4)
    >>> sched.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
"""

from __future__ import annotations

from typing import Any

import torch

from finetune_kit.errors import ConfigError
from finetune_kit.optim.param_groups import add_param_group

__all__ = ["Scheduler"]


class Scheduler:
    """Base class: sets ``base_lr * lr_mult * warmup(t) * schedule(t)`` on every group.

    Subclasses implement :meth:`schedule` (and may set ``interval = "epoch"``).

    Args:
        optimizer: the optimizer; groups without ``"lr_mult"`` get ``lr / base_lr``.
        epochs: length of the run in epochs.
        steps_per_epoch: optimizer steps per epoch.
        warmup_epochs: length of the linear warmup, in epochs (0: none).
        warmup_start_factor: warmup starts at this fraction of the lr, in ``[0, 1]``.

    Raises:
        ConfigError: a non-positive length, a warmup longer than the run, a bad start factor.

    Example:
        >>> import torch
        >>> from finetune_kit.optim.schedulers.fixed import ConstantScheduler
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = ConstantScheduler(opt, epochs=2, steps_per_epoch=4, warmup_epochs=1)
        >>> sched.step(); sched.step()
        >>> sched.get_last_lr(), sched.factor(t=4)
        ([0.5], 1.0)
    """

    interval: str = "step"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.0,
    ) -> None:
        _check_lengths(epochs, steps_per_epoch, warmup_epochs, warmup_start_factor)
        self.optimizer = optimizer
        self.base_lr = float(optimizer.defaults["lr"])
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        per_tick = 1 if self.interval == "epoch" else self.steps_per_epoch
        self.total_steps = self.epochs * per_tick
        warmup = warmup_epochs * per_tick
        self.warmup_steps = warmup if self.interval == "epoch" else round(warmup)
        self.warmup_start_factor = float(warmup_start_factor)
        self.t = 0
        for group in optimizer.param_groups:
            group.setdefault("lr_mult", float(group["lr"]) / self.base_lr)
        self._apply()

    def schedule(self, t: int) -> float:
        """The schedule's factor at tick ``t``, warmup excluded (subclasses implement it)."""
        raise NotImplementedError

    def warmup(self, t: int) -> float:
        """The linear warmup factor at tick ``t``: from the start factor to 1 over W ticks."""
        if self.warmup_steps <= 0:
            return 1.0
        s = self.warmup_start_factor
        return s + (1.0 - s) * min(t / self.warmup_steps, 1.0)

    def factor(self, t: int | None = None) -> float:
        """``warmup(t) * schedule(t)`` at tick ``t`` (default: now)."""
        t = self.t if t is None else t
        return self.warmup(t) * self.schedule(t)

    def step(self, metric: float | None = None) -> None:
        """Advance one tick and set the lrs (``metric`` is used by ``plateau`` only)."""
        self.t += 1
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            self._apply_group(group)

    def _apply_group(self, group: dict[str, Any]) -> None:
        group["lr"] = self.base_lr * group.get("lr_mult", 1.0) * self.factor()

    def get_last_lr(self) -> list[float]:
        """The current lr of every parameter group."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add ``group`` to the optimizer and give it this step's lr (``lr_mult`` default 1)."""
        self._apply_group(add_param_group(self.optimizer, None, group))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the tick count and base lr."""
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and set the lrs for the restored tick."""
        self.t = int(state["t"])
        self.base_lr = float(state["base_lr"])
        self._apply()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(interval={self.interval!r}, t={self.t}, "
            f"total_steps={self.total_steps}, warmup_steps={self.warmup_steps})"
        )


def _check_lengths(
    epochs: int, steps_per_epoch: int, warmup_epochs: float, warmup_start_factor: float
) -> None:
    if int(epochs) != epochs or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer; got {epochs!r}.")
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be a positive integer; got {steps_per_epoch!r}.")
    if not 0 <= warmup_epochs <= epochs:
        raise ConfigError(f"warmup_epochs must be in [0, epochs={epochs}]; got {warmup_epochs}.")
    if not 0.0 <= warmup_start_factor <= 1.0:
        raise ConfigError(f"warmup_start_factor must be in [0, 1]; got {warmup_start_factor}.")
