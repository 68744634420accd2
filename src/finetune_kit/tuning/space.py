"""The search space: the ``[tune]`` section of a config file, one entry per config key.

Each entry names a config key (``section.key``, or ``section.options.name`` for the option
tables) and says which values a trial may give it::

    [tune]
    "optim.lr" = {low = 1e-4, high = 0.3, log = true}          # a float, log-uniform
    "loader.batch_size" = [64, 128, 256]                         # one of these
    "train.epochs" = {low = 2, high = 6}                         # an int (both bounds ints)
    "finetune.strategy" = ["full", "freeze_first", "lora"]
    "finetune.options.n" = {choices = [1, 2, 3], when = {"finetune.strategy" = "freeze_first"}}
    "finetune.options.rank" = {choices = [4, 8], when = {"finetune.strategy" = "lora"}}

A list is a set of choices; a table holds ``choices``, or ``low`` and ``high`` with optional
``log`` and ``step``, and optionally ``when``: the entry is used only in trials where the
earlier entries it names took one of the given values (a value or a list of values). Keys
are quoted because they hold dots; TOML's dotted keys and ``[tune.optim]`` tables work too.

Example:
    >>> space = SearchSpace.from_dict({"optim.lr": {"low": 1e-3, "high": 0.1, "log": True},
    ...                                "finetune.strategy": ["full", "lora"]})
    >>> [p.key for p in space.params], space.params[0].kind
    (['optim.lr', 'finetune.strategy'], 'float')
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from finetune_kit.config import RunConfig
from finetune_kit.config.run_config import SECTIONS
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["Param", "SearchSpace"]

ENTRY_KEYS = ("choices", "low", "high", "log", "step", "when")
# Keys a trial must not change, and why.
FIXED_KEYS = {
    "train.output_dir": "each trial writes its own run directory under the study directory",
    "train.overwrite": "trial directories are never reused",
    "finetune.recipe": "a trial is one Trainer run; tune finetune.strategy instead",
}
Scalar = str | int | float | bool


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Param:
    """One entry of the search space.

    Args:
        key: the config key it sets, e.g. ``"optim.lr"`` or ``"finetune.options.n"``.
        choices: the values to choose from (categorical), or None for a range.
        low: lower bound of a range (inclusive).
        high: upper bound of a range (inclusive).
        log: sample the range log-uniformly.
        step: spacing of the values of a range (None: continuous floats, 1 for ints).
        when: ``((key, allowed values), ...)``: the entry is used only when each named earlier
            entry took one of its allowed values.

    Example:
        >>> Param("loader.batch_size", choices=(64, 128)).describe()
        'one of 64, 128'
    """

    key: str
    choices: tuple[Scalar, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()

    @property
    def kind(self) -> str:
        """``"categorical"``, ``"int"`` (both bounds are ints) or ``"float"``."""
        if self.choices is not None:
            return "categorical"
        ints = isinstance(self.low, int) and isinstance(self.high, int)
        return "int" if ints and (self.step is None or isinstance(self.step, int)) else "float"

    def candidates(self) -> tuple[Scalar, ...]:
        """The values to check before a study starts: every choice, or both bounds."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether this entry is used, given the values of the earlier entries of a trial."""
        return all(key in values and values[key] in allowed for key, allowed in self.when)

    def suggest(self, trial: Any) -> Scalar:
        """Ask an Optuna trial for this entry's value (the Optuna parameter is named ``key``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        """What the entry searches, in words."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            how = "log-uniform" if self.log else "uniform"
            step = f", step {self.step}" if self.step is not None else ""
            text = f"{self.kind} {how} in [{self.low}, {self.high}]{step}"
        for key, allowed in self.when:
            text += f"; when {key} is {' or '.join(map(str, allowed))}"
        return text


@dataclass(frozen=True)
class SearchSpace:
    """The entries of a ``[tune]`` section, in the order they were written.

    Build it with :meth:`from_dict`; a trial's values come from :meth:`suggest` and go into a
    config with :meth:`apply`.

    Args:
        params: the entries.

    Example:
        >>> space = SearchSpace.from_dict({"optim": {"lr": [0.01, 0.1]}})
        >>> space.apply(RunConfig(), {"optim.lr": 0.1}).optim.lr
        0.1
    """

    params: tuple[Param, ...]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "[tune]") -> SearchSpace:
        """Parse a ``[tune]`` table, checking every key and entry.

        Args:
            raw: ``{"section.key": entry}`` (nested tables are flattened into dotted keys).
            source: where it came from, for messages.

        Returns:
            The search space.

        Raises:
            ConfigError: an unknown config key or entry field (with a suggestion), a bad
                range, or a ``when`` that names no earlier choice entry or a value it lacks.

        Example:
            >>> SearchSpace.from_dict({"optim.lrr": [0.1]})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            finetune_kit.errors.ConfigError: [tune]: unknown config key 'optim.lrr'. Did you mean ...
        """
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(
                f"{source} must be a table with one entry per config key to search, e.g. "
                '"optim.lr" = {low = 1e-4, high = 0.1, log = true}.'
            )
        params: list[Param] = []
        for key, entry in _flatten(raw, "", source):
            params.append(_parse_entry(key, entry, params, source))
        return cls(tuple(params))

    @property
    def keys(self) -> list[str]:
        """The config keys searched, in order."""
        return [p.key for p in self.params]

    def suggest(self, trial: Any) -> dict[str, Scalar]:
        """The values of one trial: each active entry asks ``trial`` (an ``optuna.Trial``)."""
        values: dict[str, Scalar] = {}
        for param in self.params:
            if param.active(values):
                values[param.key] = param.suggest(trial)
        return values

    def apply(self, config: RunConfig, values: Mapping[str, Any], *, source: str = "trial") -> RunConfig:
        """A copy of ``config`` with ``values`` (``{"section.key": value}``) set and checked.

        Raises:
            ConfigError: a value the config refuses (wrong type or out of range).
        """
        data = config.to_dict()
        for key, value in values.items():
            section, name, *option = key.split(".", 2)
            if option:
                data[section].setdefault(name, {})[option[0]] = value
            else:
                data[section][name] = value
        return RunConfig.from_dict(data, source=source)

    def table(self) -> str:
        """One line per entry: key and what it searches."""
        width = max(len(p.key) for p in self.params)
        return "\n".join(f"  {p.key:<{width}}  {p.describe()}" for p in self.params)


def _fields(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def _all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _is_table_field(section: str, name: str) -> bool:
    hint = _fields(section)[name]
    return (typing.get_origin(hint) or hint) is dict


def _flatten(raw: Mapping[str, Any], prefix: str, source: str) -> Iterator[tuple[str, Any]]:
    """``(config key, entry)`` pairs; a table under a section or an option table is a namespace."""
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        parts = key.split(".")
        namespace = parts[0] in SECTIONS and (
            len(parts) == 1 or (len(parts) == 2 and parts[1] in _fields(parts[0]))
        )
        if namespace and len(parts) == 2 and not _is_table_field(*parts):
            namespace = False  # "optim.lr": the value is the entry itself
        if namespace and isinstance(value, Mapping):
            yield from _flatten(value, key, source)
        else:
            _check_key(key, source)
            yield key, value


def _check_key(key: str, source: str) -> None:
    parts = key.split(".", 2)
    every = _all_keys()
    if len(parts) < 2 or parts[0] not in SECTIONS or parts[1] not in _fields(parts[0]):
        bare = [k for k in every if k.split(".", 1)[1] == key]
        hint = f" Did you mean '{bare[0]}'?" if len(bare) == 1 else did_you_mean(key, every)
        raise ConfigError(
            f"{source}: unknown config key '{key}'.{hint} Write keys as section.key, e.g. "
            '"optim.lr"; valid keys: ' + ", ".join(every) + "."
        )
    base = ".".join(parts[:2])
    if base in FIXED_KEYS:
        raise ConfigError(f"{source}: '{base}' cannot be searched: {FIXED_KEYS[base]}.")
    table = _is_table_field(parts[0], parts[1])
    if table and len(parts) == 2:
        raise ConfigError(
            f"{source}: '{key}' is a table of options; search one option per entry, e.g. "
            f'"{key}.n" = [1, 2, 3].'
        )
    if not table and len(parts) == 3:
        raise ConfigError(f"{source}: '{base}' is not a table of options, so '{key}' names nothing.")


def _parse_entry(key: str, entry: Any, earlier: list[Param], source: str) -> Param:
    where = f"{source} {key}"
    if isinstance(entry, list):
        return Param(key, choices=_choices(entry, where))
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"{where} = {entry!r}: an entry is a list of choices ([0.01, 0.1]) or a range "
            f"({{low = 0.01, high = 0.1}}); a fixed value belongs in the config's own section."
        )
    for name in entry:
        if name not in ENTRY_KEYS:
            raise ConfigError(
                f"{where}: unknown field '{name}'.{did_you_mean(str(name), ENTRY_KEYS)} "
                f"An entry takes: {', '.join(ENTRY_KEYS)}."
            )
    when = _when(entry.get("when", {}), earlier, where)
    if "choices" in entry:
        extra = sorted(set(entry) - {"choices", "when"})
        if extra:
            raise ConfigError(
                f"{where}: give either choices or low/high, not both (found {', '.join(extra)})."
            )
        return Param(key, choices=_choices(entry["choices"], where), when=when)
    return _range(key, entry, when, where)


def _choices(values: Any, where: str) -> tuple[Scalar, ...]:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: choices must be a non-empty list, got {values!r}.")
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(
                f"{where}: choice {value!r} is a {type(value).__name__}; choices are strings, numbers "
                "or booleans (search a table's options one entry each)."
            )
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{where}: choices {values!r} repeat a value.")
    return tuple(values)


def _range(key: str, entry: Mapping[str, Any], when: tuple, where: str) -> Param:
    missing = [name for name in ("low", "high") if name not in entry]
    if missing:
        raise ConfigError(
            f"{where}: a range needs low and high (missing {' and '.join(missing)}), e.g. "
            "{low = 1e-4, high = 0.1, log = true}; or give choices = [...]."
        )
    low, high, step, log = entry["low"], entry["high"], entry.get("step"), entry.get("log", False)
    if not (_is_number(low) and _is_number(high)) or (step is not None and not _is_number(step)):
        raise ConfigError(f"{where}: low, high and step must be numbers, got {dict(entry)!r}.")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}.")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low = {low}, high = {high}.")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}.")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log, got step = {step}.")
    return Param(key, low=low, high=high, log=log, step=step, when=when)


def _when(raw: Any, earlier: list[Param], where: str) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f'{where}: when must be a table such as {{"finetune.strategy" = "lora"}}, got {raw!r}.'
        )
    named = {p.key: p for p in earlier if p.choices is not None}
    conditions = []
    for key, allowed in raw.items():
        if key not in named:
            raise ConfigError(
                f"{where}: when names '{key}', which is not an earlier choice entry of [tune]."
                f"{did_you_mean(key, list(named))} A condition refers to a list entry written above it."
            )
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        for value in values:
            if value not in named[key].choices:
                choices = named[key].choices
                raise ConfigError(
                    f"{where}: when {key} = {value!r}, but {key} is one of "
                    f"{', '.join(map(repr, choices))}.{did_you_mean(str(value), [str(c) for c in choices])}"
                )
        conditions.append((key, values))
    return tuple(conditions)
