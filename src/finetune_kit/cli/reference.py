"""A Markdown reference of every ``finetune-kit`` subcommand and flag, generated from argparse.

The docs build writes it into the command-line page, so the page lists exactly what the
command accepts.
"""

from __future__ import annotations

import argparse
import re

from finetune_kit.cli.parser import build_parser

__all__ = ["cli_reference"]


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest.upper()
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    return f"{names} {action.metavar or action.dest.upper()}"


def _rows(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> list[str]:
    rows = []
    for action in parser._actions:  # argparse's public API has no other way to list arguments
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction) or action.dest in skip:
            continue
        default = action.default
        text = (action.help or "").replace("|", "\\|")
        quiet = default in (None, argparse.SUPPRESS, False, []) or "default" in text  # said already
        shown = "" if quiet else f" (default: `{default}`)"
        rows.append(f"| `{_flag(action)}` | {text}{shown} |")
    return rows


def _wrap_usage(usage: str, width: int = 88) -> str:
    """The usage line cut between whole options (``[--lr LR]`` stays together), so the page
    needs no horizontal scrolling."""
    lines, line = [], ""
    for token in re.findall(r"\[[^\]]*\]|\S+", usage):
        if line and len(line) + 1 + len(token) > width:
            lines.append(line)
            line = "    " + token
        else:
            line = f"{line} {token}" if line else token
    return "\n".join([*lines, line])


def cli_reference() -> str:
    """Markdown: the usage line, then a table of the arguments, of every subcommand.

    Example:
        >>> "### `finetune-kit train`" in cli_reference()
        True
    """
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [
        "Global flags (before or after the subcommand):",
        "",
        "| flag | meaning |",
        "| --- | --- |",
        *_rows(parser),
        "",
    ]
    for name, sub in subparsers.choices.items():
        usage = _wrap_usage(" ".join(sub.format_usage().split()).removeprefix("usage: "))
        lines += [
            f"### `finetune-kit {name}`",
            "",
            sub.description or "",
            "",
            "```text",
            usage,
            "```",
            "",
            "| argument | meaning |",
            "| --- | --- |",
            *_rows(sub, skip=("debug",)),  # --debug: a global flag, listed once above
            "",
        ]
    return "\n".join(lines)
