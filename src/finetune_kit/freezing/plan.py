"""Freezing: applying a strategy to a model, and what the resulting plan trains.

:func:`apply_strategy` turns a strategy (by name from :func:`list_strategies`, or an instance)
into a :class:`FreezePlan` on a model: it sets ``requires_grad`` on every parameter, applies the
BatchNorm policy (:mod:`finetune_kit.freezing.bn_policy`) to the frozen BatchNorm layers, and gives the
Trainer what it needs: per-parameter learning-rate multipliers, the parameters a gradual
schedule unfreezes at each epoch, a checkpointable state, and a trainable summary
(:mod:`finetune_kit.freezing.summary`).

Strategies act on the *stages* of a model (:mod:`finetune_kit.models.stages`): named, ordered slices,
input side first, head last, such as ``stem, layer1 .. layer4, head`` for a ResNet.

Example:
    >>> from finetune_kit.models import create_model
    >>> model = create_model("resnet18", num_classes=5, in_channels=1, small_input=True)
    >>> plan = apply_strategy(model, "freeze_first", n=3)
    >>> [s.name for s in model_stages(model)]
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    >>> model.layer1[0].conv1.weight.requires_grad, model.layer3[0].conv1.weight.requires_grad
    (False, True)
    >>> print(plan.summary().table())  # doctest: +NORMALIZE_WHITESPACE
    strategy: freeze_first(n=3)   BatchNorm policy of frozen layers: eval
    stage       params   trainable  BatchNorm      lr mult
    stem           704           0  eval           -
    layer1     147,968           0  eval           -
    layer2     525,568           0  eval           -
    layer3   2,099,712   2,099,712  follows model  1
    layer4   8,393,728   8,393,728  follows model  1
    head         2,565       2,565  -              1
    total   11,170,245  10,496,005
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.freezing import peft as _peft  # noqa: F401  (registers the lora and bitfit strategies)
from finetune_kit.freezing import strategies as _strategies  # noqa: F401  (registers the built-ins)
from finetune_kit.freezing.bn_policy import apply_bn_policy, batchnorm_affine_names, check_bn_policy
from finetune_kit.freezing.registry import (
    STRATEGIES,
    Strategy,
    create_strategy,
    list_strategies,
    register_strategy,
)
from finetune_kit.freezing.summary import StageRow, TrainableSummary
from finetune_kit.models.stages import Stage, model_stages, stage_of
from finetune_kit.models.unwrap import unwrap_model
from finetune_kit.optim.param_groups import param_groups

PLAN_ATTR = "finetune_kit_plan"

__all__ = [
    "PLAN_ATTR",
    "STRATEGIES",
    "FreezePlan",
    "Strategy",
    "apply_strategy",
    "current_plan",
    "list_strategies",
    "plan_from_state",
    "register_strategy",
]


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (how options come back from a checkpoint)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class FreezePlan:
    """A strategy applied to a model: what trains now, at which LR, and what BatchNorm does.

    Made by :func:`apply_strategy`. The plan keeps ``requires_grad`` and the BatchNorm modes of
    its model in line with the strategy; the Trainer asks it for LR multipliers, calls
    :meth:`on_epoch_start` every epoch and checkpoints :meth:`state_dict`.

    Args:
        model: the model (already prepared by the strategy).
        strategy: the strategy.
        bn_policy: ``"eval"``, ``"train"`` or ``"frozen_affine"``
            (see :mod:`~finetune_kit.freezing.bn_policy`).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
        >>> plan = apply_strategy(net, "gradual_unfreeze", every=1)
        >>> plan.trainable_names()
        ['2.weight', '2.bias']
        >>> plan.on_epoch_start(net, 1)
        ['1.weight', '1.bias']
        >>> plan.state_dict()["level"]
        1
    """

    def __init__(self, model: nn.Module, strategy: Strategy, *, bn_policy: str = "eval") -> None:
        self.model = model
        self.strategy = strategy
        self.bn_policy = check_bn_policy(bn_policy)
        self.level = 0
        self._trainable: set[str] = set()
        self._bn_modes: dict[str, str] = {}

    def stages(self) -> list[Stage]:
        """The model's stages now (see :func:`model_stages`)."""
        return model_stages(self.model)

    def apply(self) -> None:
        """Set ``requires_grad`` and the BatchNorm modes from the strategy at the current level.

        Raises:
            ConfigError: the strategy names unknown parameters or leaves nothing trainable.
        """
        stages = self.stages()
        names = set(self.strategy.trainable(self.model, stages, self.level))
        if self.bn_policy == "frozen_affine":
            names -= batchnorm_affine_names(self.model)
        self._set_trainable(names, stages)

    def _set_trainable(self, names: set[str], stages: Sequence[Stage]) -> None:
        params = dict(self.model.named_parameters())
        unknown = sorted(names - set(params))
        if unknown:
            raise ConfigError(
                f"Strategy {self.strategy.describe()} names parameters the model "
                f"does not have: {unknown[:5]}."
            )
        if not names:
            raise ConfigError(
                f"Strategy {self.strategy.describe()} with bn_policy="
                f"{self.bn_policy!r} leaves no parameter trainable."
            )
        for name, param in params.items():
            param.requires_grad_(name in names)
        self._trainable = set(names)
        self._apply_bn(stages)

    def _apply_bn(self, stages: Sequence[Stage]) -> None:
        def stage_trains(name: str) -> bool:  # for affine-free BatchNorm layers
            index = stage_of(name, stages)
            return index < 0 or any(n in self._trainable for n in stages[index].params)

        self._bn_modes = apply_bn_policy(self.model, self.bn_policy, self._trainable, stage_trains)

    def trainable_names(self) -> list[str]:
        """Qualified names of the trainable parameters, in model order."""
        return [n for n, _ in self.model.named_parameters() if n in self._trainable]

    def lr_multipliers(self) -> dict[str, float]:
        """Qualified name -> learning-rate multiplier, for every trainable parameter.

        Raises:
            ConfigError: the strategy gives a multiplier to a stage the model does not have.
        """
        stages = self.stages()
        mults = self.strategy.multipliers(stages)
        unknown = sorted(set(mults) - {s.name for s in stages})
        if unknown:
            raise ConfigError(
                f"Strategy {self.strategy.describe()} sets LR multipliers of unknown stages {unknown}."
            )
        return {
            n: float(mults.get(stage.name, 1.0))
            for stage in stages
            for n in stage.params
            if n in self._trainable
        }

    def param_groups(self, *, weight_decay: float, no_decay_norm_bias: bool = True) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable parameters, with their LR multipliers.

        See :func:`finetune_kit.optim.param_groups` for the arguments.
        """
        return param_groups(
            self.model,
            weight_decay=weight_decay,
            no_decay_norm_bias=no_decay_norm_bias,
            lr_multipliers=self.lr_multipliers(),
        )

    def on_epoch_start(self, model: nn.Module, epoch: int) -> list[str]:
        """Unfreeze what the schedule opens at ``epoch`` (0-based); idempotent.

        Args:
            model: the plan's model (DDP / ``torch.compile`` wrappers are looked through).
            epoch: the epoch about to start.

        Returns:
            Qualified names of the parameters that became trainable now (``[]`` if none); give
            them to the optimizer as a new group so that the scheduler drives them.

        Raises:
            ConfigError: ``model`` is not the plan's model.
        """
        if unwrap_model(model) is not self.model:
            raise ConfigError(
                "on_epoch_start got a different model from the one the plan was "
                "made for; apply the strategy to this model first."
            )
        level = self.strategy.level_at(int(epoch), self.stages())
        if level <= self.level:
            return []
        before = set(self._trainable)
        self.level = level
        self.apply()
        return [n for n in self.trainable_names() if n not in before]

    def state_dict(self) -> dict[str, Any]:
        """The freezing state for checkpoints: strategy, options, policy, level, trainable names."""
        return {
            "strategy": self.strategy.name,
            "options": _plain(self.strategy.options()),
            "bn_policy": self.bn_policy,
            "level": self.level,
            "trainable": self.trainable_names(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: re-apply ``requires_grad`` and the BatchNorm policy.

        Raises:
            CheckpointError: the state is malformed, or was saved with another strategy,
                other options, another BatchNorm policy or parameters this model lacks.
        """
        try:
            saved = (state["strategy"], _plain(state["options"]), state["bn_policy"])
            level, names = int(state["level"]), set(state["trainable"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"The freezing state of the checkpoint is malformed ({err!r}).") from None
        ours = (self.strategy.name, _plain(self.strategy.options()), self.bn_policy)
        if saved != ours:
            raise CheckpointError(
                f"The checkpoint was trained with strategy {saved[0]!r}, options {saved[1]}, "
                f"bn_policy {saved[2]!r}; this run has {ours[0]!r}, {ours[1]}, {ours[2]!r}. "
                "Resume with the same finetune settings."
            )
        missing = sorted(names - {n for n, _ in self.model.named_parameters()})
        if missing:
            raise CheckpointError(
                f"The checkpoint's freezing state names parameters this model "
                f"lacks: {missing[:5]}. Resume with the same model and strategy."
            )
        self.level = level
        self._set_trainable(names, self.stages())

    def summary(self) -> TrainableSummary:
        """The trainable summary: per stage, parameters, trainable, BatchNorm, LR multipliers."""
        stages, mults = self.stages(), self.lr_multipliers()
        rows = []
        for i, stage in enumerate(stages):
            trainable = [n for n in stage.params if n in self._trainable]
            modes = [m for name, m in self._bn_modes.items() if stage_of(name, stages) == i]
            batchnorm = ", ".join(dict.fromkeys(modes)) or "-"
            rows.append(
                StageRow(
                    stage.name,
                    stage.num_params,
                    sum(stage.params[n].numel() for n in trainable),
                    batchnorm,
                    tuple(sorted({mults[n] for n in trainable})),
                )
            )
        return TrainableSummary(self.strategy.describe(), self.bn_policy, tuple(rows))

    def __repr__(self) -> str:
        return (
            f"FreezePlan({self.strategy.describe()}, bn_policy={self.bn_policy!r}, "
            f"level={self.level}, trainable={len(self._trainable)} tensors)"
        )


def apply_strategy(
    model: nn.Module, name_or_strategy: str | Strategy = "full", *, bn_policy: str = "eval", **options: Any
) -> FreezePlan:
    """Apply a freezing strategy to ``model`` (in place) and return its :class:`FreezePlan`.

    Args:
        model: the model; LoRA wraps some of its layers.
        name_or_strategy: a name from :func:`list_strategies` or a :class:`Strategy` instance.
        bn_policy: what frozen BatchNorm layers do: ``"eval"`` (default; running statistics
            fixed, also after ``model.train()``), ``"train"`` (statistics update) or
            ``"frozen_affine"`` (every BatchNorm layer fixed, in trainable stages too).
        **options: the strategy's options, e.g. ``n=2`` for ``freeze_first``.

    Returns:
        The plan.

    Raises:
        UnknownNameError: an unknown strategy name (the message lists the strategies).
        ConfigError: an unknown option, a bad value, a bad ``bn_policy``, or options given
            together with a Strategy instance.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
        >>> plan = apply_strategy(net, "discriminative_lr", decay=0.5)
        >>> plan.lr_multipliers()["0.weight"], plan.lr_multipliers()["2.weight"]
        (0.25, 1.0)
        >>> apply_strategy(net, "linear_probe").trainable_names()
        ['2.weight', '2.bias']
    """
    check_bn_policy(bn_policy)
    if isinstance(name_or_strategy, str):
        strategy = create_strategy(name_or_strategy, **options)
    elif isinstance(name_or_strategy, Strategy):
        if options:
            raise ConfigError(
                f"Options {sorted(options)} go to the strategy's constructor when "
                "a Strategy instance is given."
            )
        strategy = name_or_strategy
    else:
        raise ConfigError(
            f"apply_strategy expects a strategy name ({', '.join(list_strategies())})"
            f" or a Strategy instance; got {type(name_or_strategy).__name__}."
        )
    strategy.prepare(model, model_stages(model))
    plan = FreezePlan(model, strategy, bn_policy=bn_policy)
    plan.apply()
    setattr(model, PLAN_ATTR, plan)  # a Trainer given this model keeps the plan
    return plan


def current_plan(model: nn.Module) -> FreezePlan | None:
    """The plan :func:`apply_strategy` last applied to ``model``, if any.

    Args:
        model: the model.

    Returns:
        The :class:`FreezePlan`, or None when no strategy was applied to this model.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> current_plan(net) is None
        True
        >>> apply_strategy(net, "linear_probe") is current_plan(net)
        True
    """
    plan = getattr(model, PLAN_ATTR, None)
    return plan if isinstance(plan, FreezePlan) and plan.model is model else None


def plan_from_state(model: nn.Module, state: dict[str, Any]) -> FreezePlan:
    """Re-apply a checkpoint's freezing state to a freshly built model.

    Use it before loading the checkpoint's weights into a new model: it re-applies the
    strategy's structural changes (LoRA layers, so the state-dict keys fit), then the saved
    trainable set and BatchNorm policy.

    Args:
        model: the model, built as for the run that wrote the checkpoint.
        state: the checkpoint's ``"freezing"`` entry (:meth:`FreezePlan.state_dict`).

    Returns:
        The plan.

    Raises:
        CheckpointError: the state is malformed.
        UnknownNameError: its strategy is not registered here.

    Example:
        >>> from torch import nn
        >>> saved = apply_strategy(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), "lora",
        ...                        rank=1).state_dict()
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> plan_from_state(net, saved).trainable_names()
        ['0.lora_a.weight', '0.lora_b.weight', '1.weight', '1.bias']
    """
    try:
        name, options, policy = state["strategy"], dict(state["options"]), state["bn_policy"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"The freezing state is malformed ({err!r}).") from None
    plan = apply_strategy(model, name, bn_policy=policy, **options)
    plan.load_state_dict(state)
    return plan
