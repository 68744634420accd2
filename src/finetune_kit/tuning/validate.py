"""Check a study before its first trial: every value the search may try, every name, the metric.

A typo in the ``[tune]`` section must not cost a trial, so each candidate value is put into the
config and checked as the config checks it, each part name is looked up in its registry (with
"did you mean"), and each option is checked against the part that receives it.

Example:
    >>> from finetune_kit.config import RunConfig
    >>> from finetune_kit.tuning.space import SearchSpace
    >>> check_study(RunConfig(), SearchSpace.from_dict({"finetune.strategy": ["full", "lorra"]}),
    ...             "val_accuracy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    finetune_kit.errors.UnknownNameError: [tune] ...: Unknown strategy 'lorra'. Did you mean 'lora'? ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetune_kit.config import RunConfig
from finetune_kit.data import DATASETS, PRESETS
from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.freezing import STRATEGIES, create_strategy
from finetune_kit.metrics import METRICS
from finetune_kit.models import MODELS
from finetune_kit.optim import LOSSES, OPTIMIZERS, SCHEDULERS
from finetune_kit.registry import Registry, did_you_mean
from finetune_kit.tuning.space import Param, SearchSpace

__all__ = ["NAMED_KEYS", "OPTION_TABLES", "check_study", "direction_of"]

# Config keys whose values are registered names.
NAMED_KEYS: dict[str, Registry] = {
    "data.dataset": DATASETS,
    "data.preset": PRESETS,
    "model.name": MODELS,
    "optim.loss": LOSSES,
    "optim.optimizer": OPTIMIZERS,
    "optim.scheduler": SCHEDULERS,
    "finetune.strategy": STRATEGIES,
}
# Option tables and the key that names the part receiving them.
OPTION_TABLES = {
    "data.options": "data.dataset",
    "model.options": "model.name",
    "optim.scheduler_options": "optim.scheduler",
    "finetune.options": "finetune.strategy",
}


def direction_of(metric: str) -> str:
    """``"minimize"`` for a loss (a metric whose name ends in ``loss``), else ``"maximize"``.

    Example:
        >>> direction_of("val_loss"), direction_of("val_accuracy")
        ('minimize', 'maximize')
    """
    return "minimize" if metric.endswith("loss") else "maximize"


def check_study(base: RunConfig, space: SearchSpace, metric: str) -> None:
    """Refuse a study that would fail in a trial: bad values, unknown names or options, metric.

    Args:
        base: the config every trial starts from.
        space: the search space.
        metric: the logged metric the study optimises (``val_accuracy``, ``val_loss``, ...).

    Raises:
        UnknownNameError: a part name (strategy, model, optimizer ...) that is not registered.
        ConfigError: a value the config refuses, an option a part does not take, a recipe in
            the config, or a metric the trials do not log.
    """
    if base.finetune.recipe is not None:
        raise ConfigError(
            f"finetune.recipe = {base.finetune.recipe!r}: a trial is one Trainer run, so recipes "
            "cannot be tuned; remove the recipe and search finetune.strategy instead."
        )
    for param in space.params:
        for value in param.candidates():
            space.apply(base, {param.key: value}, source=f"[tune] {param.key} = {value!r}")
    _check_names(base, space)
    _check_options(base, space)
    _check_metric(base, metric)


def _tuned(space: SearchSpace, key: str) -> Param | None:
    return next((p for p in space.params if p.key == key), None)


def _base_value(base: RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(base, section), name)


def _values(base: RunConfig, space: SearchSpace, key: str) -> tuple[Any, ...]:
    """The values ``key`` may take in a trial (None: unset)."""
    param = _tuned(space, key)
    if param is None:
        return (_base_value(base, key),)
    return tuple(param.choices if param.choices is not None else param.candidates())


def _names(base: RunConfig, space: SearchSpace, key: str) -> tuple[Any, ...]:
    """The names ``key`` may take in a trial (an unset key, such as the default strategy, is
    the library's own choice and has nothing to check)."""
    return tuple(v for v in _values(base, space, key) if v is not None)


def _check_names(base: RunConfig, space: SearchSpace) -> None:
    for key, registry in NAMED_KEYS.items():
        source = "[tune]" if _tuned(space, key) else "config"
        for name in _names(base, space, key):
            if key == "data.preset" and name == "auto":
                continue
            try:
                registry.get(name)
            except UnknownNameError as exc:
                raise UnknownNameError(f"{source} {key}: {exc}") from None


def _check_options(base: RunConfig, space: SearchSpace) -> None:
    """Each part that may be chosen must take the options a trial may give it."""
    for table, owner in OPTION_TABLES.items():
        registry = NAMED_KEYS[owner]
        fixed = dict(_base_value(base, table))
        searched = [p for p in space.params if p.key.startswith(table + ".")]
        if (fixed or searched) and None in _values(base, space, owner):
            given = sorted({*fixed, *(p.key.split(".", 2)[2] for p in searched)})
            raise ConfigError(
                f"[tune] {table} {given} may be given to a trial whose {owner} is unset; options "
                f"belong to a {owner}. Set {owner} (or search it), or remove the options."
            )
        for name in _names(base, space, owner):
            given = [p for p in searched if _may_reach(p, owner, name)]
            options = fixed | {p.key.split(".", 2)[2]: p.candidates()[0] for p in given}
            try:
                registry.check_options(name, options)
                if owner == "finetune.strategy":
                    _build_strategies(name, fixed, given)
            except ConfigError as exc:
                hint = ""
                if set(fixed) - {p.key.split(".", 2)[2] for p in given} and _tuned(space, owner):
                    option = next(iter(fixed))
                    hint = (
                        f" Options for only some {owner} values belong in [tune] with a condition, "
                        f'e.g. "{table}.{option}" = {{choices = [...], when = {{"{owner}" = "..."}}}}.'
                    )
                raise ConfigError(f"[tune] {owner} = {name!r} with {table} {options}: {exc}{hint}") from None


def _may_reach(param: Param, owner: str, name: Any) -> bool:
    """Whether ``param`` can be active in a trial where ``owner`` is ``name``."""
    return all(name in allowed for key, allowed in param.when if key == owner)


def _build_strategies(name: str, fixed: Mapping[str, Any], given: list[Param]) -> None:
    """Build the strategy with every candidate value of each searched option (cheap, no model)."""
    first = {p.key.split(".", 2)[2]: p.candidates()[0] for p in given}
    create_strategy(name, **(fixed | first))
    for param in given:
        for value in param.candidates():
            create_strategy(name, **(fixed | first | {param.key.split(".", 2)[2]: value}))


def _check_metric(base: RunConfig, metric: str) -> None:
    extra = set(base.train.metrics)
    logged = ["val_loss", "val_accuracy", "train_loss", "train_accuracy"]
    logged += [f"val_{name}" for name in sorted(extra) if name in METRICS]
    if metric not in logged:
        raise ConfigError(
            f"The study cannot optimise {metric!r}: the trials do not log it.{did_you_mean(metric, logged)} "
            f"Logged metrics: {', '.join(logged)} (add more with train.metrics)."
        )
