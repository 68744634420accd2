"""What the ``finetune-kit`` subcommands share: exit codes and common flags."""

from __future__ import annotations

import argparse

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "add_overrides"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def add_overrides(p: argparse.ArgumentParser, example: str = "optim.lr=0.1") -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, e.g. --set {example} (repeatable; nested keys with dots, "
        "'none' unsets an optional key)",
    )
