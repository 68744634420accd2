"""Optimisation: optimizers and their parameter groups, losses, schedulers, EMA, the lr finder.

Example:
    >>> from torch import nn
    >>> opt = create_optimizer(nn.Linear(2, 2), "adamw", lr=1e-3, weight_decay=0.05)
    >>> type(opt).__name__
    'AdamW'
"""

from __future__ import annotations

from finetune_kit.optim.clipping import clip_gradients
from finetune_kit.optim.ema import ModelEma
from finetune_kit.optim.losses import (
    LOSSES,
    CrossEntropyLoss,
    FocalLoss,
    SoftTargetCrossEntropy,
    create_loss,
    list_losses,
    register_loss,
)
from finetune_kit.optim.lr_finder import LRFindResult, lr_find
from finetune_kit.optim.optimizers import (
    OPTIMIZERS,
    OptimizerSpec,
    create_optimizer,
    list_optimizers,
    register_optimizer,
)
from finetune_kit.optim.param_groups import add_param_group, param_groups
from finetune_kit.optim.schedulers import (
    SCHEDULERS,
    Scheduler,
    create_scheduler,
    list_schedulers,
    register_scheduler,
)

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "CrossEntropyLoss",
    "FocalLoss",
    "LRFindResult",
    "ModelEma",
    "OptimizerSpec",
    "Scheduler",
    "SoftTargetCrossEntropy",
    "add_param_group",
    "clip_gradients",
    "create_loss",
    "create_optimizer",
    "create_scheduler",
    "list_losses",
    "list_optimizers",
    "list_schedulers",
    "lr_find",
    "param_groups",
    "register_loss",
    "register_optimizer",
    "register_scheduler",
]
