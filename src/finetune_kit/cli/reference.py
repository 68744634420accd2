"""A Markdown reference of every ``finetune-kit`` subcommand and flag, generated from argparse.

The docs build writes it into the command-line page, so the page lists exactly what the
command accepts.
"""

from __future__ import annotations

import argparse

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
        shown = "" if default in (None, argparse.SUPPRESS, False, []) else f" (default: `{default}`)"
        text = (action.help or "").replace("|", "\\|")
        rows.append(f"| `{_flag(action)}` | {text}{shown} |")
    return rows


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
        usage = " ".join(sub.format_usage().split())
        lines += [
            f"### `finetune-kit {name}`",
            "",
            sub.description or "",
            "",
            "```text",
            usage.removeprefix("usage: "),
            "```",
            "",
            "| argument | meaning |",
            "| --- | --- |",
            *_rows(sub),
            "",
        ]
    return "\n".join(lines)
