"""``key=value`` overrides of a run configuration (the CLI's ``--set``).

Example:
    >>> from finetune_kit.config import RunConfig
    >>> cfg = apply_overrides(RunConfig(), ["loader.batch_size=64", "epochs=4", "model.name=lenet"])
    >>> (cfg.loader.batch_size, cfg.train.epochs, cfg.model.name)
    (64, 4, 'lenet')
"""

from __future__ import annotations

import dataclasses
from typing import Any

from finetune_kit.config.files import tomllib
from finetune_kit.config.run_config import SECTIONS, RunConfig, build_section
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["TRAINER_SECTIONS", "apply_overrides", "route_options"]


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` (or unambiguous ``key=value``) overrides.

    Values are parsed as TOML values (``0.1``, ``true``, ``"text"``, ``[1, 2]``); a bare word
    that is not valid TOML is taken as a string, so ``model.name=resnet18`` works. A key inside
    a table is reached with more dots: ``finetune.options.n=2``, ``data.options.train_size=500``.

    Args:
        config: the configuration to start from (not modified).
        overrides: strings such as ``"optim.lr=0.1"``.

    Returns:
        A new configuration.

    Raises:
        ConfigError: malformed override, unknown key (with a suggestion), bad value.
    Example:
        >>> apply_overrides(RunConfig(), ["optim.lr=0.2", "epochs=3"]).train.epochs
        3
        >>> apply_overrides(RunConfig(), ["finetune.options.n=2"]).finetune.options
        {'n': 2}
    """
    data = config.to_dict()
    for item in overrides:
        section, key, value = _parse_override(item)
        key, *inner = key.split(".")
        table = data.setdefault(section, {})
        if inner:  # a key inside a table-valued key, e.g. finetune.options.n
            table = _subtable(table, key, item)
            for part in inner[:-1]:
                table = _subtable(table, part, item)
            key = inner[-1]
        table[key] = value
    return RunConfig.from_dict(data, source="--set")


def _subtable(table: dict[str, Any], key: str, item: str) -> dict[str, Any]:
    """``table[key]`` as a (new, if missing) table, for a dotted ``--set`` key."""
    value = table.setdefault(key, {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"--set {item}: {key!r} is not a table (it holds {value!r}), so it has no keys inside."
        )
    return value


def _parse_override(item: str) -> tuple[str, str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. optim.lr=0.1), got {item!r}.")
    dotted, text = (part.strip() for part in item.split("=", 1))
    if "." in dotted:
        section, key = dotted.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(
                f"--set {item}: unknown section '{section}'.{did_you_mean(section, list(SECTIONS))} "
                f"Valid sections: {', '.join(SECTIONS)}."
            )
    else:
        section, key = _section_of(dotted), dotted
    return section, key, _parse_value(text)


def _section_of(key: str) -> str:
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise ConfigError(
            f"--set {key}=...: '{key}' exists in several sections ({', '.join(owners)}); "
            f"write it as section.key, e.g. {owners[0]}.{key}=..."
        )
    every = sorted({f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)})
    bare = [name.split(".", 1)[1] for name in every]
    hint = did_you_mean(key, bare)
    raise ConfigError(f"--set {key}=...: unknown key '{key}'.{hint} Valid keys: {', '.join(every)}.")


def _parse_value(text: str) -> Any:
    if "\n" in text or "\r" in text:  # more TOML lines would be parsed and silently dropped
        raise ConfigError(f"--set value {text!r} spans several lines; give one value per --set.")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


TRAINER_SECTIONS = ("loader", "optim", "finetune", "train")


def route_options(config: RunConfig, options: dict[str, Any]) -> RunConfig:
    """Put flat keyword arguments (``lr=0.1``) into the config section that owns them.

    This is how ``Trainer(model, data, epochs=5, lr=0.1)`` fills its config.

    Raises:
        ConfigError: an unknown option (with a suggestion) or a bad value.

    Example:
        >>> route_options(RunConfig(), {"lr": 0.2, "batch_size": 32}).loader.batch_size
        32
    """
    owners = {f.name: name for name in TRAINER_SECTIONS for f in dataclasses.fields(SECTIONS[name])}
    sections = {name: dataclasses.asdict(getattr(config, name)) for name in TRAINER_SECTIONS}
    for key, value in options.items():
        if key not in owners:
            raise ConfigError(
                f"Trainer got an unknown option {key!r}.{did_you_mean(key, list(owners))} "
                f"Options: {', '.join(sorted(owners))}."
            )
        sections[owners[key]][key] = value
    built = {name: build_section(name, values, source="Trainer") for name, values in sections.items()}
    return dataclasses.replace(config, **built)
