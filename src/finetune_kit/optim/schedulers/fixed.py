"""Schedules fixed in advance: the lr factor is a function of the step count alone.

``constant``, ``step`` and ``multistep`` (decays at epochs), ``cosine`` (annealing to
``eta_min``) and ``onecycle`` (PyTorch's ``OneCycleLR``, momentum cycled too). They run on
absolute time: milestones are the epochs you name and cosine reaches ``eta_min`` at the last
step. Each is stepped after every optimizer step (``interval == "step"``) and takes a linear
warmup (:class:`~finetune_kit.optim.schedulers.base.Scheduler`). Build them by name with
:func:`finetune_kit.optim.schedulers.factory.create_scheduler`.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = MultiStepScheduler(opt, epochs=4, steps_per_epoch=2, milestones=[2], gamma=0.5)
    >>> [s.factor(t) for t in range(8)]
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.optim.schedulers.base import Scheduler

__all__ = [
    "ConstantScheduler",
    "CosineScheduler",
    "MultiStepScheduler",
    "OneCycleScheduler",
    "StepScheduler",
]


class ConstantScheduler(Scheduler):
    """The base lr throughout (after the warmup, if any).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = ConstantScheduler(opt, epochs=1, steps_per_epoch=4, warmup_epochs=0.5)
        >>> [s.factor(t) for t in range(4)]
        [0.0, 0.5, 1.0, 1.0]
    """

    def schedule(self, t: int) -> float:
        return 1.0


def _check_gamma(gamma: float) -> float:
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"gamma must be in (0, 1]; got {gamma}.")
    return float(gamma)


class StepScheduler(Scheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs, as ``StepLR`` stepped per epoch.

    Args:
        step_size: epochs between decays (default 30).
        gamma: the decay factor (default 0.1).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = StepScheduler(opt, epochs=4, steps_per_epoch=1, step_size=2, gamma=0.5)
        >>> [s.factor(t) for t in range(4)]
        [1.0, 1.0, 0.5, 0.5]
    """

    def __init__(
        self, optimizer: Optimizer, *, step_size: int = 30, gamma: float = 0.1, **lengths: Any
    ) -> None:
        if int(step_size) != step_size or step_size < 1:
            raise ConfigError(f"step_size must be a positive integer (epochs); got {step_size}.")
        self.step_size, self.gamma = int(step_size), _check_gamma(gamma)
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        return self.gamma ** ((t // self.steps_per_epoch) // self.step_size)


class MultiStepScheduler(Scheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch, as ``MultiStepLR`` per epoch.

    Args:
        milestones: increasing epoch numbers (default: at 50% and 75% of the run).
        gamma: the decay factor (default 0.1).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = MultiStepScheduler(opt, epochs=4, steps_per_epoch=1, milestones=[1, 3])
        >>> [round(s.factor(t), 3) for t in range(4)]
        [1.0, 0.1, 0.1, 0.01]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        milestones: Sequence[int] | None = None,
        gamma: float = 0.1,
        **lengths: Any,
    ) -> None:
        epochs = lengths.get("epochs", 1)
        marks = list(milestones) if milestones is not None else [epochs // 2, (3 * epochs) // 4]
        if any(int(m) != m or m < 0 for m in marks) or marks != sorted(marks):
            raise ConfigError(f"milestones must be increasing epoch numbers; got {marks}.")
        self.milestones, self.gamma = [int(m) for m in marks], _check_gamma(gamma)
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        epoch = t // self.steps_per_epoch
        return self.gamma ** sum(1 for m in self.milestones if m <= epoch)


class CosineScheduler(Scheduler):
    """Cosine annealing from the base lr to ``eta_min`` over the run (``CosineAnnealingLR``).

    Args:
        eta_min: the final lr of a group with ``lr_mult=1`` (others scale it by ``lr_mult``).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = CosineScheduler(opt, epochs=1, steps_per_epoch=4)
        >>> [round(s.factor(t), 3) for t in range(5)]
        [1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(self, optimizer: Optimizer, *, eta_min: float = 0.0, **lengths: Any) -> None:
        if not 0.0 <= eta_min <= optimizer.defaults["lr"]:
            raise ConfigError(f"eta_min must be in [0, lr]; got {eta_min}.")
        self.eta_min = float(eta_min)
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        floor = self.eta_min / self.base_lr
        progress = min(t, self.total_steps) / self.total_steps
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0


def _anneal(start: float, end: float, pct: float, strategy: str) -> float:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start


class OneCycleScheduler(Scheduler):
    """The 1cycle policy of ``torch.optim.lr_scheduler.OneCycleLR`` (same formula).

    The base lr is the peak (``max_lr``): the lr rises from ``lr / div_factor`` to ``lr`` over
    the first ``pct_start`` of the run, then anneals to ``lr / div_factor / final_div_factor``.
    After the last step the lr stays at its final value.

    Args:
        pct_start: fraction of the run spent increasing the lr.
        div_factor: initial lr = peak / div_factor.
        final_div_factor: final lr = initial lr / final_div_factor.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        three_phase: OneCycleLR's three-phase variant.
        cycle_momentum: cycle momentum (or Adam's beta1) inversely to the lr.
        base_momentum: the momentum at the peak lr.
        max_momentum: the momentum at the lowest lrs.

    Raises:
        ConfigError: a bad value, or ``cycle_momentum`` with an optimizer without momentum.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = OneCycleScheduler(opt, epochs=1, steps_per_epoch=10)
        >>> round(s.factor(0), 3), s.factor(2), opt.param_groups[0]["momentum"]
        (0.04, 1.0, 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
        three_phase: bool = False,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        **lengths: Any,
    ) -> None:
        if not 0.0 < pct_start < 1.0 or anneal_strategy not in ("cos", "linear"):
            raise ConfigError(
                "onecycle needs 0 < pct_start < 1 and anneal_strategy 'cos' or "
                f"'linear'; got {pct_start}, {anneal_strategy!r}."
            )
        if div_factor <= 0 or final_div_factor <= 0:
            raise ConfigError("div_factor and final_div_factor must be > 0.")
        defaults = optimizer.defaults
        if cycle_momentum and "momentum" not in defaults and "betas" not in defaults:
            raise ConfigError(
                f"{type(optimizer).__name__} has no momentum to cycle: pass "
                "cycle_momentum=False to the onecycle scheduler."
            )
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        self.momenta = (float(max_momentum), float(base_momentum))
        initial = 1.0 / div_factor
        self._phases = self._make_phases(
            lengths["epochs"] * lengths["steps_per_epoch"],
            pct_start,
            initial,
            initial / final_div_factor,
            three_phase,
        )
        super().__init__(optimizer, **lengths)

    @staticmethod
    def _make_phases(
        total: int, pct: float, initial: float, final: float, three_phase: bool
    ) -> list[tuple[float, float, float, int, int]]:
        """(end_step, start factor, end factor, start momentum idx, end momentum idx)."""
        up = float(pct * total) - 1
        if three_phase:
            return [(up, initial, 1.0, 0, 1), (2 * up, 1.0, initial, 1, 0), (total - 1, initial, final, 0, 0)]
        return [(up, initial, 1.0, 0, 1), (total - 1, 1.0, final, 1, 0)]

    def _position(self, t: int) -> tuple[int, float]:
        """(phase index, fraction of it done) at tick ``t``, as OneCycleLR.get_lr finds them."""
        t = min(t, self.total_steps - 1)
        start = 0.0
        for i, (end, *_rest) in enumerate(self._phases):
            if t <= end or i == len(self._phases) - 1:
                return i, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def schedule(self, t: int) -> float:
        i, pct = self._position(t)
        _, start, end, _, _ = self._phases[i]
        return _anneal(start, end, pct, self.anneal_strategy)

    def _apply_group(self, group: dict[str, Any]) -> None:
        super()._apply_group(group)
        if self.cycle_momentum:
            i, pct = self._position(self.t)
            _, _, _, m0, m1 = self._phases[i]
            momentum = _anneal(self.momenta[m0], self.momenta[m1], pct, self.anneal_strategy)
            if "betas" in group:
                group["betas"] = (momentum, *group["betas"][1:])
            else:
                group["momentum"] = momentum
