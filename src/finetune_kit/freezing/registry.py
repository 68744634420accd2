"""Freezing strategies by name: the :class:`Strategy` base class and its registry.

A :class:`Strategy` acts on the stages of a model (:func:`~finetune_kit.models.model_stages`:
``stem, layer1 .. layer4, head`` for a ResNet) and on module names. It says which parameters
train at an unfreeze *level* (how many stages below the head a gradual schedule has opened), the
learning-rate multiplier of each stage, and may change the model first (LoRA). Strategies are
looked up by name in :data:`STRATEGIES`; :func:`~finetune_kit.freezing.apply_strategy` applies
one and returns a :class:`~finetune_kit.freezing.FreezePlan`. The built-in strategies are in
:mod:`finetune_kit.freezing.strategies`, the PEFT ones (``lora``, ``bitfit``) in
:mod:`finetune_kit.freezing.peft`.

Example:
    >>> import finetune_kit.freezing  # registers every built-in strategy
    >>> list_strategies("freeze*")
    ['freeze_first', 'freeze_until']
    >>> create_strategy("gradual_unfreeze", every=2).describe()
    'gradual_unfreeze(every=2, start=2, decay=1.0)'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.registry import Registry

if TYPE_CHECKING:
    from finetune_kit.models.stages import Stage

__all__ = ["STRATEGIES", "Strategy", "create_strategy", "list_strategies", "register_strategy"]


class Strategy:
    """Base class of freezing strategies: everything trains with multiplier 1.

    Subclasses override :meth:`trainable` and, where needed, :meth:`prepare` (change the model),
    :meth:`multipliers` (per-stage LR multipliers), :meth:`level_at` (gradual unfreezing) and
    :meth:`options` (what :meth:`describe` shows and checkpoints record).

    Example:
        >>> class TopTwo(Strategy):
        ...     def trainable(self, model, stages, level):
        ...         return {n for s in stages[-2:] for n in s.params}
        >>> TopTwo().describe()
        'TopTwo()'
    """

    name: ClassVar[str] = ""

    def prepare(self, model: nn.Module, stages: Sequence[Stage]) -> None:
        """Change the model before freezing (LoRA wraps layers); the default does nothing."""

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        """Qualified names of the parameters that train at unfreeze ``level``."""
        return {n for stage in stages for n in stage.params}

    def multipliers(self, stages: Sequence[Stage]) -> dict[str, float]:
        """Stage name -> learning-rate multiplier (stages left out: 1.0)."""
        return {}

    def level_at(self, epoch: int, stages: Sequence[Stage]) -> int:
        """Unfreeze level at the start of ``epoch`` (0-based); static strategies stay at 0."""
        return 0

    def options(self) -> dict[str, Any]:
        """The strategy's options as plain values."""
        return {}

    def describe(self) -> str:
        """``name(option=value, ...)``, e.g. ``freeze_first(n=2)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{self.name or type(self).__name__}({args})"


STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy")
"""The freezing strategies by name: factories called with the strategy's options."""


def register_strategy(
    name: str, factory: Callable[..., Strategy] | None = None, *, override: bool = False
) -> Any:
    """Register a strategy class (or factory) under ``name``; without ``factory``, a decorator.

    Args:
        name: lowercase snake_case key.
        factory: called with the options given to ``apply_strategy``; returns a Strategy.
        override: replace an existing entry instead of raising.

    Returns:
        ``factory`` (or a decorator that registers and returns its argument).

    Raises:
        ConfigError: the name is malformed or taken.

    Example:
        >>> @register_strategy("everything")
        ... class Everything(Strategy):
        ...     pass
        >>> "everything" in list_strategies()
        True
        >>> STRATEGIES.unregister("everything")
    """
    return STRATEGIES.register(name, factory, override=override)


def list_strategies(pattern: str = "*") -> list[str]:
    """Sorted names of the registered strategies matching a shell-style glob.

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered strategies that match.

    Example:
        >>> list_strategies()[:3]
        ['bitfit', 'discriminative_lr', 'freeze_first']
    """
    return STRATEGIES.list(pattern)


def create_strategy(name: str, **options: Any) -> Strategy:
    """Build the strategy registered as ``name`` with its options, checking their names.

    Args:
        name: a name from :func:`list_strategies`.
        **options: that strategy's options (e.g. ``n=2`` for ``freeze_first``).

    Returns:
        The :class:`Strategy`, ready for :func:`~finetune_kit.apply_strategy`.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the strategies).
        ConfigError: an unknown or missing option, or a bad value.

    Example:
        >>> create_strategy("freeze_first", n=2).describe()
        'freeze_first(n=2)'
    """
    factory = STRATEGIES.get(name)
    STRATEGIES.check_options(name, options)
    params = inspect.signature(factory).parameters
    needed = [
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and k not in options
    ]
    if needed:
        raise ConfigError(
            f"Strategy {name!r} needs the option(s) {', '.join(needed)}: in Python "
            f"apply_strategy(model, {name!r}, {needed[0]}=...) (a Trainer: options={{{needed[0]!r}: ...}}); "
            f"in a config finetune.options = {{{needed[0]} = ...}} (--set finetune.options.{needed[0]}=...)."
        )
    strategy = factory(**options)
    if not strategy.name:
        strategy.name = name
    return strategy
