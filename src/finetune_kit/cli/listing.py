"""``finetune-kit list KIND [PATTERN]``: the registered names of a kind."""

from __future__ import annotations

import argparse
import importlib

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

NAME = "list"
HELP = "list registered names of a kind"

# kind -> (module, function): imported only for the kind asked for.
LISTERS = {
    "datasets": ("finetune_kit.data", "list_datasets"),
    "models": ("finetune_kit.models", "list_models"),
    "losses": ("finetune_kit.optim", "list_losses"),
    "optimizers": ("finetune_kit.optim", "list_optimizers"),
    "schedulers": ("finetune_kit.optim", "list_schedulers"),
    "metrics": ("finetune_kit.metrics", "list_metrics"),
    "strategies": ("finetune_kit.freezing", "list_strategies"),
    "recipes": ("finetune_kit.training", "list_recipes"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``finetune-kit list``."""
    p.add_argument("kind", help=", ".join(LISTERS))
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'resnet*'")


def _kind(text: str) -> str:
    for kind in LISTERS:
        if text in (kind, kind.removesuffix("s"), kind.removesuffix("es"), kind[:-3] + "y"):
            return kind
    raise ConfigError(
        f"Unknown kind {text!r}.{did_you_mean(text, list(LISTERS))} Kinds: {', '.join(LISTERS)}."
    )


def run(args: argparse.Namespace) -> int:
    """Print the matching names, one per line."""
    module, function = LISTERS[_kind(args.kind)]
    for name in getattr(importlib.import_module(module), function)(args.pattern):
        print(name)
    return 0
