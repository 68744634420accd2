"""Freezing: which parameters train, at which learning rate, and what BatchNorm does meanwhile.

Strategies (``full``, ``linear_probe``, ``freeze_first``, ``gradual_unfreeze``,
``discriminative_lr``, ``bitfit``, ``lora`` ...) are looked up by name; :func:`apply_strategy`
turns one into a :class:`FreezePlan` on a model.

Example:
    >>> "linear_probe" in list_strategies() and "lora" in list_strategies()
    True
"""

from __future__ import annotations

from finetune_kit.freezing import peft as _peft  # noqa: F401  (registers the lora and bitfit strategies)
from finetune_kit.freezing import strategies as _strategies  # noqa: F401  (registers the built-ins)
from finetune_kit.freezing.bn_policy import BN_POLICIES, apply_bn_policy
from finetune_kit.freezing.peft import add_lora, merge_lora, unmerge_lora
from finetune_kit.freezing.plan import FreezePlan, apply_strategy, current_plan, plan_from_state
from finetune_kit.freezing.registry import (
    STRATEGIES,
    Strategy,
    create_strategy,
    list_strategies,
    register_strategy,
)
from finetune_kit.freezing.summary import StageRow, TrainableSummary

__all__ = [
    "BN_POLICIES",
    "STRATEGIES",
    "FreezePlan",
    "StageRow",
    "Strategy",
    "TrainableSummary",
    "add_lora",
    "apply_bn_policy",
    "apply_strategy",
    "create_strategy",
    "current_plan",
    "list_strategies",
    "merge_lora",
    "plan_from_state",
    "register_strategy",
    "unmerge_lora",
]
