"""Learning-rate schedules looked up by name, each with optional linear warmup.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from finetune_kit.optim import create_optimizer
    >>> opt = create_optimizer(nn.Linear(2, 2), "sgd", lr=0.1)
    >>> sched = create_scheduler(opt, "cosine", epochs=2, steps_per_epoch=5)
    >>> type(sched).__name__
    'CosineScheduler'
"""

from __future__ import annotations

from finetune_kit.optim.schedulers.base import Scheduler
from finetune_kit.optim.schedulers.factory import (
    SCHEDULERS,
    create_scheduler,
    list_schedulers,
    register_scheduler,
)
from finetune_kit.optim.schedulers.fixed import (
    ConstantScheduler,
    CosineScheduler,
    MultiStepScheduler,
    OneCycleScheduler,
    StepScheduler,
)
from finetune_kit.optim.schedulers.plateau import PlateauScheduler

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
