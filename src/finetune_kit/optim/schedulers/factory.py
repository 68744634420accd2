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

This module holds the registry and :func:`create_scheduler`; the base class is in
:mod:`finetune_kit.optim.schedulers.base`, the schedules in :mod:`finetune_kit.optim.schedulers.fixed` and
:mod:`finetune_kit.optim.schedulers.plateau`.

Example:
    >>> import torch
    >>> from finetune_kit.optim import create_scheduler
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

from typing import Any

from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.optim.schedulers.base import Scheduler
from finetune_kit.optim.schedulers.fixed import (
    ConstantScheduler,
    CosineScheduler,
    MultiStepScheduler,
    OneCycleScheduler,
    StepScheduler,
)
from finetune_kit.optim.schedulers.plateau import PlateauScheduler
from finetune_kit.registry import Registry, accepted_options

__all__ = [
    "SCHEDULERS",
    "Scheduler",
    "create_scheduler",
    "list_schedulers",
    "register_scheduler",
]


# What create_scheduler passes itself; the rest of a scheduler's keywords are its options.
_COMMON = ("optimizer", "epochs", "steps_per_epoch", "warmup_epochs", "warmup_start_factor")
SCHEDULERS: Registry[type[Scheduler]] = Registry(
    "scheduler", options=lambda cls: accepted_options(cls, reserved=_COMMON, open_kwargs=False)
)
for _name, _cls in [
    ("constant", ConstantScheduler),
    ("step", StepScheduler),
    ("multistep", MultiStepScheduler),
    ("cosine", CosineScheduler),
    ("onecycle", OneCycleScheduler),
    ("plateau", PlateauScheduler),
]:
    SCHEDULERS.register(_name, _cls)


def register_scheduler(name: str, cls: type[Scheduler] | None = None, *, override: bool = False):
    """Register a :class:`Scheduler` subclass under ``name`` (or use as a decorator).

    Args:
        name: lowercase snake_case key, used as ``optim.scheduler``.
        cls: the :class:`~finetune_kit.optim.schedulers.Scheduler` subclass; its keyword-only
            ``__init__`` arguments are its options. Omit it to decorate a class.
        override: replace an existing entry instead of raising.

    Returns:
        ``cls`` (or a decorator that registers and returns its argument).

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

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered schedulers that match.

    Example:
        >>> list_schedulers()
        ['constant', 'cosine', 'multistep', 'onecycle', 'plateau', 'step']
    """
    return SCHEDULERS.list(pattern)


def create_scheduler(
    optimizer: Optimizer,
    name: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.0,
    **options: Any,
) -> Scheduler:
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
    if "max_lr" in options:
        raise ConfigError(
            f"The scheduler {name!r} has no option 'max_lr': the peak lr is the optimizer's lr (optim.lr)."
        )
    SCHEDULERS.check_options(name, options)
    return SCHEDULERS.get(name)(
        optimizer,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=warmup_epochs,
        warmup_start_factor=warmup_start_factor,
        **options,
    )
