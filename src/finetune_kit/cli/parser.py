"""The argument parser of the ``finetune-kit`` command: one module per subcommand.

Each subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit status``; flags are kebab-case and named like the config keys they set
(``--batch-size`` is ``loader.batch_size``). Nothing here imports torch, so ``--help`` and
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

__all__ = ["SUBCOMMANDS", "build_parser", "subcommand"]

# The subcommands, in the order --help lists them.
SUBCOMMANDS = (
    "train",
    "tune",
    "lr_find",
    "evaluate",
    "predict",
    "export",
    "listing",
    "verify_conv",
)


def subcommand(module: str) -> ModuleType:
    """The module of a subcommand (``"train"`` -> ``finetune_kit.cli.train``)."""
    return importlib.import_module(f"finetune_kit.cli.{module}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``finetune-kit`` command."""
    parser = argparse.ArgumentParser(
        prog="finetune-kit", description="Train, fine-tune, evaluate and deploy image classifiers."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = subcommand(name)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        p.set_defaults(run=module.run)
        # Global flags work after the subcommand too (without resetting one given before it).
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(p)
    return parser
