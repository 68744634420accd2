"""The built-in freezing strategies: full, linear_probe, freeze_first, freeze_until,
gradual_unfreeze, discriminative_lr and train_only.

Each is a :class:`~finetune_kit.freezing.registry.Strategy` registered by name; see
:mod:`finetune_kit.freezing.registry` for what a strategy decides.

Example:
    >>> FreezeFirst(n=2).describe()
    'freeze_first(n=2)'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.freezing.registry import Strategy, register_strategy
from finetune_kit.registry import did_you_mean

if TYPE_CHECKING:
    from finetune_kit.models.stages import Stage

__all__ = [
    "DiscriminativeLR",
    "FreezeFirst",
    "FreezeUntil",
    "Full",
    "GradualUnfreeze",
    "LinearProbe",
    "TrainOnly",
]


def _names(stages: Iterable[Stage]) -> set[str]:
    return {n for stage in stages for n in stage.params}


def _decay_multipliers(stages: Sequence[Stage], decay: float) -> dict[str, float]:
    last = len(stages) - 1
    return {s.name: decay ** (last - i) for i, s in enumerate(stages)}


def _check_decay(decay: object) -> float:
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 < decay <= 1:
        raise ConfigError(f"decay must be a number in (0, 1], e.g. 0.5; got {decay!r}.")
    return float(decay)


def _check_int(option: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{option} must be an integer >= {low}; got {value!r}.")
    return value


@register_strategy("full")
class Full(Strategy):
    """Everything trains (the default).

    Example:
        >>> Full().describe()
        'full()'
    """

    name = "full"


@register_strategy("linear_probe")
class LinearProbe(Strategy):
    """Only the head trains.

    Example:
        >>> from torch import nn
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
        >>> sorted(LinearProbe().trainable(net, model_stages(net), 0))
        ['1.bias', '1.weight']
    """

    name = "linear_probe"

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        return set(stages[-1].params)


@register_strategy("freeze_first")
class FreezeFirst(Strategy):
    """The first ``n`` stages are frozen, the rest train (fastai's ``freeze_to(n)``).

    Args:
        n: how many stages, from the input side, to freeze: 0 .. number of stages - 1.

    Example:
        >>> from torch import nn
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
        >>> sorted(FreezeFirst(2).trainable(net, model_stages(net), 0))
        ['2.bias', '2.weight']
    """

    name = "freeze_first"

    def __init__(self, n: int) -> None:
        self.n = _check_int("freeze_first option n", n, 0)

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        if self.n > len(stages) - 1:
            raise ConfigError(
                f"freeze_first n={self.n} is out of range: this model has {len(stages)} stages "
                f"({', '.join(s.name for s in stages)}), so n must be in 0..{len(stages) - 1} "
                "(the head always trains)."
            )
        return _names(stages[self.n :])

    def options(self) -> dict[str, Any]:
        return {"n": self.n}


@register_strategy("freeze_until")
class FreezeUntil(Strategy):
    """Everything before a named stage or module is frozen; it and what follows train.

    "Before" is stage order, and within the module's stage, parameter order.

    Args:
        module: a stage name (``"layer3"``) or a qualified module name (``"layer3.1"``).

    Example:
        >>> from torch import nn
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
        >>> sorted(FreezeUntil("1").trainable(net, model_stages(net), 0))
        ['1.bias', '1.weight', '2.bias', '2.weight']
    """

    name = "freeze_until"

    def __init__(self, module: str) -> None:
        if not isinstance(module, str) or not module:
            raise ConfigError(f"freeze_until option module must be a stage or module name; got {module!r}.")
        self.module = module

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        names = [s.name for s in stages]
        if self.module in names:
            return _names(stages[names.index(self.module) :])
        modules = [n for n, _ in model.named_modules() if n]
        if self.module not in modules:
            raise UnknownNameError(
                f"freeze_until: no stage or module named {self.module!r}."
                f"{did_you_mean(self.module, names + modules)} Stages: {', '.join(names)}; "
                "or a qualified module name from model.named_modules()."
            )
        order = [n for stage in stages for n in stage.params]
        prefix = self.module + "."
        first = next((i for i, n in enumerate(order) if n.startswith(prefix)), None)
        if first is None:
            raise ConfigError(
                f"freeze_until: module {self.module!r} has no parameters; name the layer after it or a stage."
            )
        return set(order[first:])

    def options(self) -> dict[str, Any]:
        return {"module": self.module}


@register_strategy("gradual_unfreeze")
class GradualUnfreeze(Strategy):
    """Start as a linear probe, then unfreeze one more stage from the top every ``every`` epochs.

    ULMFiT's gradual unfreezing: at epoch ``e`` (0-based) the head and the top
    ``level = 1 + (e - start) // every`` stages below it train (0 before ``start``), until the
    whole model trains.

    Args:
        every: epochs between unfreezes (>= 1).
        start: epoch of the first unfreeze (default: ``every``).
        decay: learning-rate multiplier ``decay ** distance`` from the head (1.0: none).

    Example:
        >>> g = GradualUnfreeze(every=2)
        >>> [g.level_at(e, [None] * 4) for e in range(9)]
        [0, 0, 1, 1, 2, 2, 3, 3, 3]
    """

    name = "gradual_unfreeze"

    def __init__(self, every: int = 1, start: int | None = None, decay: float = 1.0) -> None:
        self.every = _check_int("gradual_unfreeze option every", every, 1)
        self.start = self.every if start is None else _check_int("gradual_unfreeze option start", start, 0)
        self.decay = _check_decay(decay)

    def level_at(self, epoch: int, stages: Sequence[Any]) -> int:
        if epoch < self.start:
            return 0
        return min(1 + (epoch - self.start) // self.every, len(stages) - 1)

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        return _names(stages[len(stages) - 1 - level :])

    def multipliers(self, stages: Sequence[Stage]) -> dict[str, float]:
        return _decay_multipliers(stages, self.decay)

    def options(self) -> dict[str, Any]:
        return {"every": self.every, "start": self.start, "decay": self.decay}


@register_strategy("discriminative_lr")
class DiscriminativeLR(Strategy):
    """Everything trains; stage ``i`` of ``k`` gets the LR multiplier ``decay ** (k - 1 - i)``.

    The head gets 1.0, the stage below it ``decay``, and so on (fastai's discriminative LR,
    timm's ``layer_decay`` per stage).

    Args:
        decay: multiplier per stage of distance from the head, in (0, 1].

    Example:
        >>> from torch import nn
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
        >>> DiscriminativeLR(0.5).multipliers(model_stages(net))
        {'0': 0.25, '1': 0.5, 'head': 1.0}
    """

    name = "discriminative_lr"

    def __init__(self, decay: float = 0.5) -> None:
        self.decay = _check_decay(decay)

    def multipliers(self, stages: Sequence[Stage]) -> dict[str, float]:
        return _decay_multipliers(stages, self.decay)

    def options(self) -> dict[str, Any]:
        return {"decay": self.decay}


@register_strategy("train_only")
class TrainOnly(Strategy):
    """Only the named stages and modules train (precise control by name; the head is not added).

    Args:
        names: stage names and/or shell patterns over qualified module names.

    Example:
        >>> from torch import nn
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
        >>> sorted(TrainOnly(["1"]).trainable(net, model_stages(net), 0))
        ['1.bias', '1.weight']
    """

    name = "train_only"

    def __init__(self, names: str | Sequence[str]) -> None:
        self.names = (names,) if isinstance(names, str) else tuple(names)
        if not self.names:
            raise ConfigError("train_only option names is empty; name stages or modules.")

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        stage_names = {s.name: s for s in stages}
        modules = [n for n, _ in model.named_modules() if n]
        out: set[str] = set()
        for item in self.names:
            if item in stage_names:
                out |= set(stage_names[item].params)
                continue
            hits = [m for m in modules if fnmatch.fnmatchcase(m, item)]
            if not hits:
                raise UnknownNameError(
                    f"train_only: no stage or module matches {item!r}."
                    f"{did_you_mean(item, list(stage_names) + modules)} "
                    f"Stages: {', '.join(stage_names)}."
                )
            out |= {n for n, _ in model.named_parameters() if any(n.startswith(h + ".") for h in hits)}
        return out

    def options(self) -> dict[str, Any]:
        return {"names": list(self.names)}
