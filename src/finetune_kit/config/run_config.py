"""The whole run configuration: :class:`RunConfig`, one field per section, checked key by key.

Every key is checked: an unknown key is an error with a "did you mean" suggestion, a value of
the wrong type or out of range is an error naming the key, the value and what was expected.

Example:
    >>> cfg = RunConfig.from_dict({"optim": {"lr": 0.1}, "train": {"epochs": 2}})
    >>> (cfg.optim.lr, cfg.loader.batch_size, cfg.train.epochs)
    (0.1, 128, 2)
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from finetune_kit.config.sections import (
    DataConfig,
    FinetuneConfig,
    LoaderConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["SECTIONS", "RunConfig", "build_section"]

SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "loader": LoaderConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "finetune": FinetuneConfig,
    "train": TrainConfig,
}


@dataclass
class RunConfig:
    """A whole run: one field per section (see the module docstring).

    Args:
        data: the ``[data]`` section.
        loader: the ``[loader]`` section.
        model: the ``[model]`` section.
        optim: the ``[optim]`` section.
        finetune: the ``[finetune]`` section.
        train: the ``[train]`` section.

    Example:
        >>> import tempfile
        >>> from finetune_kit.config import load_config, save_config
        >>> config = RunConfig.from_dict({"model": {"name": "resnet18", "small_input": True},
        ...                               "optim": {"optimizer": "adamw", "lr": 1e-3}})
        >>> config.optim.scheduler, config.train.epochs  # every other key has its default
        ('constant', 5)
        >>> path = tempfile.mkdtemp() + "/run.toml"
        >>> save_config(config, path)  # what finetune-kit train --config reads
        >>> load_config(path) == config
        True
    """

    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> RunConfig:
        """Build from nested ``{section: {key: value}}`` data, checking every key and value.

        Raises:
            ConfigError: unknown section or key (with a suggestion), wrong type, bad value.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a table of sections, got {type(raw).__name__}.")
        sections = {}
        for name, values in raw.items():
            if name == "tune":  # a search space: only `finetune-kit tune` reads it
                raise ConfigError(
                    f"{source}: [tune] is a search space for `finetune-kit tune --config FILE` "
                    "(fk.tune in Python); a single run does not read it. Remove the section to "
                    "train one configuration, or train the best.toml that the study writes."
                )
            if name not in SECTIONS:
                raise ConfigError(
                    f"{source}: unknown section [{name}].{did_you_mean(name, list(SECTIONS))} "
                    f"Valid sections: {', '.join(SECTIONS)}."
                )
            sections[name] = build_section(name, values, source=source)
        return cls(**sections)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain data (``None`` values left out, as TOML has no null)."""
        return {name: _drop_none(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def build_section(name: str, values: Any, *, source: str = "config") -> Any:
    """Build the dataclass of section ``name`` from a dict, checking keys and types."""
    cls = SECTIONS[name]
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{name}] must be a table of key = value, got {values!r}.")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    checked = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"{source}: unknown key '{key}' in [{name}].{did_you_mean(key, fields)} "
                f"Valid keys: {', '.join(fields)}."
            )
        checked[key] = _coerce(f"{name}.{key}", value, hints[key], source)
    return cls(**checked)


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against a type hint; ints are accepted where floats are expected.

    TOML has no null: for a key that may be unset, the string ``"none"`` unsets it
    (``weights = "none"``, ``--set train.max_steps=none``).
    """
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if type(None) in options and isinstance(value, str) and value.lower() == "none":
        return None
    for option in options:
        if option is type(None) and value is None:
            return None
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (str, bool, dict, list) and isinstance(value, base):
            return value
        if base is str and isinstance(value, os.PathLike):  # output_dir=Path("runs/x")
            return os.fspath(value)
        if key == "train.precision" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # `precision = 32` in TOML means "32"
    expected = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{source}: {key} must be {expected}, got {value!r} ({type(value).__name__}).")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    base = typing.get_origin(hint) or hint
    return {dict: "a table", list: "a list"}.get(base, getattr(base, "__name__", str(base)))
