"""A Markdown reference of every config section and key, generated from the dataclasses.

The docs build writes it into the CLI and config reference page, so the page cannot drift from
the code.
"""

from __future__ import annotations

import dataclasses
import typing

from finetune_kit.config.run_config import SECTIONS

__all__ = ["config_reference"]


def _field_help(cls: type) -> dict[str, str]:
    """The ``Args:`` descriptions of a config dataclass docstring, by field name."""
    helps: dict[str, str] = {}
    current = None
    in_args = False
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args or not stripped:
            continue
        name, sep, text = stripped.partition(":")
        if sep and name.isidentifier() and line.startswith(" " * 8) and not line.startswith(" " * 12):
            current = name
            helps[name] = text.strip()
        elif current:
            helps[current] += " " + stripped
    return helps


def config_reference() -> str:
    """A Markdown reference of every section and key, with types, defaults and meaning.

    The docs build writes it into the CLI and config reference page, so the page cannot drift
    from the code.

    Example:
        >>> "| `lr` |" in config_reference()
        True
    """
    hints_of = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}
    lines = []
    for name, cls in SECTIONS.items():
        helps = _field_help(cls)
        lines += [
            f"### `[{name}]`",
            "",
            (cls.__doc__ or "").strip().splitlines()[0],
            "",
            "| key | type | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            hint = str(hints_of[name][f.name]).replace("typing.", "").replace("|", "or")
            hint = hint.replace("<class '", "").replace("'>", "")
            lines.append(f"| `{f.name}` | {hint} | `{default!r}` | {helps.get(f.name, '')} |")
        lines.append("")
    return "\n".join(lines)
