"""The generated command-line reference lists every flag, once, in lines that fit the page."""

from __future__ import annotations

import argparse

from finetune_kit.cli.parser import build_parser
from finetune_kit.cli.reference import cli_reference


def test_every_flag_of_every_subcommand_is_listed_once():
    text = cli_reference()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        section = text.split(f"### `finetune-kit {name}`")[1].split("### ")[0]
        for action in sub._actions:
            if action.option_strings and action.dest not in ("help", "debug"):
                assert f"| `{action.option_strings[0]}" in section, (name, action.option_strings)
        assert "| `--debug`" not in section  # the global flag is listed once, at the top
    assert text.count("| `--debug`") == 1


def test_usage_lines_fit_and_defaults_are_not_said_twice():
    text = cli_reference()
    blocks = text.split("```text\n")[1:]
    for block in blocks:
        for line in block.split("```")[0].splitlines():
            assert len(line) <= 92, line
            assert line.count("[") == line.count("]"), line  # an option is never cut in two
    for row in text.splitlines():
        if row.startswith("| `"):
            assert row.count("default") <= 1 or "(default:" not in row, row
