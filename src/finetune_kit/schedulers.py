"""Learning-rate schedules looked up by name, each with optional linear warmup.

A :class:`Scheduler` counts its ``step()`` calls ``t`` and sets, for every parameter group,
``lr = base_lr * group["lr_mult"] * warmup(t) * schedule(t)``. ``base_lr`` is the optimizer's
``defaults["lr"]``, read once. Because each step recomputes every group's lr from its
``"lr_mult"``, a group added mid-run (after an unfreeze) is scheduled like the others.

Warmup is linear and multiplies the schedule (as ``torch.optim.lr_scheduler.ChainedScheduler``
of ``LinearLR`` and the schedule does): ``warmup(t) = s + (1 - s) * min(t / W, 1)`` with
``s = warmup_start_factor`` and ``W = warmup_epochs * steps_per_epoch`` (rounded) steps. The
schedule itself runs on absolute time: milestones are the epochs you name and cosine reaches
``eta_min`` at the last step.

=========  ========  =====================================================================
name       interval  ``schedule(t)`` (``T`` = epochs * steps_per_epoch, ``e = t // steps``)
=========  ========  =====================================================================
constant   step      ``1``
step       step      ``gamma ** (e // step_size)``  (``StepLR`` per epoch)
multistep  step      ``gamma ** (number of milestones <= e)``  (``MultiStepLR``)
cosine     step      ``m + (1 - m) * (1 + cos(pi * min(t, T) / T)) / 2``, ``m = eta_min/base_lr``
onecycle   step      ``OneCycleLR`` over ``T`` steps; the base lr is the peak
plateau    epoch     ``ReduceLROnPlateau``: times ``factor`` after ``patience`` bad epochs
=========  ========  =====================================================================

``interval == "step"``: call ``step()`` after every optimizer step. ``interval == "epoch"``
(plateau): call ``step(metric)`` once at the end of every epoch; its warmup then counts in
epochs (``W = warmup_epochs``, fractional allowed).

Example:
    >>> import torch
    >>> from finetune_kit.schedulers import create_scheduler
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = create_scheduler(opt, "step", epochs=4, steps_per_epoch=2, step_size=2)
    >>> lrs = []
    >>> for _ in range(8):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01]
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.optim import add_param_group
from finetune_kit.registry import Registry, did_you_mean

__all__ = [
    "SCHEDULERS",
    "ConstantScheduler",
    "CosineScheduler",
    "MultiStepScheduler",
    "OneCycleScheduler",
    "PlateauScheduler",
    "Scheduler",
    "StepScheduler",
    "create_scheduler",
    "list_schedulers",
    "register_scheduler",
]


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
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = ConstantScheduler(opt, epochs=2, steps_per_epoch=4, warmup_epochs=1)
        >>> sched.step(); sched.step()
        >>> sched.get_last_lr(), sched.factor(t=4)
        ([0.5], 1.0)
    """

    interval: str = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
                 warmup_epochs: float = 0.0, warmup_start_factor: float = 0.0) -> None:
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
        return (f"{type(self).__name__}(interval={self.interval!r}, t={self.t}, "
                f"total_steps={self.total_steps}, warmup_steps={self.warmup_steps})")


def _check_lengths(epochs: int, steps_per_epoch: int, warmup_epochs: float,
                   warmup_start_factor: float) -> None:
    if int(epochs) != epochs or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer; got {epochs!r}.")
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be a positive integer; got {steps_per_epoch!r}.")
    if not 0 <= warmup_epochs <= epochs:
        raise ConfigError(f"warmup_epochs must be in [0, epochs={epochs}]; got {warmup_epochs}.")
    if not 0.0 <= warmup_start_factor <= 1.0:
        raise ConfigError(f"warmup_start_factor must be in [0, 1]; got {warmup_start_factor}.")


SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler")
_COMMON = ("epochs", "steps_per_epoch", "warmup_epochs", "warmup_start_factor")


def register_scheduler(name: str, cls: type[Scheduler] | None = None, *,
                       override: bool = False):
    """Register a :class:`Scheduler` subclass under ``name`` (or use as a decorator).

    Example:
        >>> @register_scheduler("half")
        ... class Half(Scheduler):
        ...     def schedule(self, t):
        ...         return 0.5
        >>> SCHEDULERS.unregister("half")
    """
    return SCHEDULERS.register(name, cls, override=override)


def list_schedulers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered schedulers matching a shell-style glob.

    Example:
        >>> list_schedulers()
        ['constant', 'cosine', 'multistep', 'onecycle', 'plateau', 'step']
    """
    return SCHEDULERS.list(pattern)


def create_scheduler(optimizer: Optimizer, name: str, *, epochs: int, steps_per_epoch: int,
                     warmup_epochs: float = 0.0, warmup_start_factor: float = 0.0,
                     **options: Any) -> Scheduler:
    """Build the scheduler registered as ``name`` for ``optimizer``.

    Args:
        optimizer: its ``defaults["lr"]`` is the base (peak) lr.
        name: a name from :func:`list_schedulers`.
        epochs: length of the run.
        steps_per_epoch: optimizer steps per epoch (after gradient accumulation).
        warmup_epochs: linear warmup length in epochs (fractions allowed).
        warmup_start_factor: the warmup's first lr as a fraction of the lr.
        **options: that scheduler's options (``step_size``, ``milestones``, ``gamma``,
            ``eta_min``, ``pct_start``, ``patience``, ...).

    Returns:
        The scheduler, with the lrs for tick 0 already set.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an unknown option or a bad value.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> create_scheduler(opt, "cosine", epochs=2, steps_per_epoch=5).interval
        'step'
    """
    cls = SCHEDULERS.get(name)
    params = inspect.signature(cls).parameters
    accepted = [n for n, p in params.items() if n not in _COMMON and p.kind is p.KEYWORD_ONLY]
    for key in options:
        if key not in accepted:
            hint = " The peak lr is the optimizer's lr." if key == "max_lr" else ""
            raise ConfigError(
                f"The scheduler {name!r} has no option {key!r}.{did_you_mean(key, accepted)} "
                f"Its options are: {', '.join(accepted) or '(none)'}.{hint}"
            )
    return cls(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch,
               warmup_epochs=warmup_epochs, warmup_start_factor=warmup_start_factor, **options)


@register_scheduler("constant")
class ConstantScheduler(Scheduler):
    """The base lr throughout (after the warmup, if any).

    Example:
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


@register_scheduler("step")
class StepScheduler(Scheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs, as ``StepLR`` stepped per epoch.

    Args:
        step_size: epochs between decays (default 30).
        gamma: the decay factor (default 0.1).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = StepScheduler(opt, epochs=4, steps_per_epoch=1, step_size=2, gamma=0.5)
        >>> [s.factor(t) for t in range(4)]
        [1.0, 1.0, 0.5, 0.5]
    """

    def __init__(self, optimizer: Optimizer, *, step_size: int = 30, gamma: float = 0.1,
                 **lengths: Any) -> None:
        if int(step_size) != step_size or step_size < 1:
            raise ConfigError(f"step_size must be a positive integer (epochs); got {step_size}.")
        self.step_size, self.gamma = int(step_size), _check_gamma(gamma)
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        return self.gamma ** ((t // self.steps_per_epoch) // self.step_size)


@register_scheduler("multistep")
class MultiStepScheduler(Scheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch, as ``MultiStepLR`` per epoch.

    Args:
        milestones: increasing epoch numbers (default: at 50% and 75% of the run).
        gamma: the decay factor (default 0.1).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = MultiStepScheduler(opt, epochs=4, steps_per_epoch=1, milestones=[1, 3])
        >>> [round(s.factor(t), 3) for t in range(4)]
        [1.0, 0.1, 0.1, 0.01]
    """

    def __init__(self, optimizer: Optimizer, *, milestones: Sequence[int] | None = None,
                 gamma: float = 0.1, **lengths: Any) -> None:
        epochs = lengths.get("epochs", 1)
        marks = list(milestones) if milestones is not None else [epochs // 2, (3 * epochs) // 4]
        if any(int(m) != m or m < 0 for m in marks) or marks != sorted(marks):
            raise ConfigError(f"milestones must be increasing epoch numbers; got {marks}.")
        self.milestones, self.gamma = [int(m) for m in marks], _check_gamma(gamma)
        super().__init__(optimizer, **lengths)

    def schedule(self, t: int) -> float:
        epoch = t // self.steps_per_epoch
        return self.gamma ** sum(1 for m in self.milestones if m <= epoch)


@register_scheduler("cosine")
class CosineScheduler(Scheduler):
    """Cosine annealing from the base lr to ``eta_min`` over the run (``CosineAnnealingLR``).

    Args:
        eta_min: the final lr of a group with ``lr_mult=1`` (others scale it by ``lr_mult``).

    Example:
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


@register_scheduler("onecycle")
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
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = OneCycleScheduler(opt, epochs=1, steps_per_epoch=10)
        >>> round(s.factor(0), 3), s.factor(2), opt.param_groups[0]["momentum"]
        (0.04, 1.0, 0.95)
    """

    def __init__(self, optimizer: Optimizer, *, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 anneal_strategy: str = "cos", three_phase: bool = False,
                 cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, **lengths: Any) -> None:
        if not 0.0 < pct_start < 1.0 or anneal_strategy not in ("cos", "linear"):
            raise ConfigError("onecycle needs 0 < pct_start < 1 and anneal_strategy 'cos' or "
                              f"'linear'; got {pct_start}, {anneal_strategy!r}.")
        if div_factor <= 0 or final_div_factor <= 0:
            raise ConfigError("div_factor and final_div_factor must be > 0.")
        defaults = optimizer.defaults
        if cycle_momentum and "momentum" not in defaults and "betas" not in defaults:
            raise ConfigError(f"{type(optimizer).__name__} has no momentum to cycle: pass "
                              "cycle_momentum=False to the onecycle scheduler.")
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        self.momenta = (float(max_momentum), float(base_momentum))
        initial = 1.0 / div_factor
        self._phases = self._make_phases(lengths["epochs"] * lengths["steps_per_epoch"],
                                         pct_start, initial, initial / final_div_factor,
                                         three_phase)
        super().__init__(optimizer, **lengths)

    @staticmethod
    def _make_phases(total: int, pct: float, initial: float, final: float,
                     three_phase: bool) -> list[tuple[float, float, float, int, int]]:
        """(end_step, start factor, end factor, start momentum idx, end momentum idx)."""
        up = float(pct * total) - 1
        if three_phase:
            return [(up, initial, 1.0, 0, 1), (2 * up, 1.0, initial, 1, 0),
                    (total - 1, initial, final, 0, 0)]
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


@register_scheduler("plateau")
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
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = PlateauScheduler(opt, epochs=9, steps_per_epoch=1, patience=1)
        >>> for loss in (1.0, 0.9, 0.9, 0.9):
        ...     s.step(loss)
        >>> s.get_last_lr()
        [0.1]
    """

    interval = "epoch"

    def __init__(self, optimizer: Optimizer, *, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8,
                 **lengths: Any) -> None:
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ConfigError("plateau needs mode 'min' or 'max' and threshold_mode 'rel' or "
                              f"'abs'; got {mode!r}, {threshold_mode!r}.")
        if not 0.0 < factor < 1.0 or patience < 0 or cooldown < 0 or min_lr < 0:
            raise ConfigError("plateau needs 0 < factor < 1 and non-negative patience, "
                              "cooldown and min_lr.")
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
            raise ConfigError("The plateau scheduler needs the monitored metric: "
                              "call step(metric) at the end of each epoch.")
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
