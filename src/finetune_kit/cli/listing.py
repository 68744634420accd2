"""``finetune-kit list KIND [PATTERN]``: the registered names of a kind."""

from __future__ import annotations

import argparse
import fnmatch

from finetune_kit.cli.builtin_names import BUILTIN_NAMES, LISTERS
from finetune_kit.config.files import list_configs
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

NAME = "list"
HELP = "list registered names of a kind"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``finetune-kit list``."""
    p.add_argument("kind", help=", ".join([*LISTERS, "configs"]))
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'resnet*'")


def _kind(text: str) -> str:
    for kind in [*LISTERS, "configs"]:
        if text in (kind, kind.removesuffix("s"), kind.removesuffix("es"), kind[:-3] + "y"):
            return kind
    raise ConfigError(
        f"Unknown kind {text!r}.{did_you_mean(text, [*LISTERS, 'configs'])} "
        f"Kinds: {', '.join([*LISTERS, 'configs'])}."
    )


def run(args: argparse.Namespace) -> int:
    """Print the matching names, one per line."""
    kind = _kind(args.kind)
    names = list_configs() if kind == "configs" else BUILTIN_NAMES[kind]  # no torch: answers at once
    for name in names:
        if fnmatch.fnmatchcase(name, args.pattern):
            print(name)
    return 0
