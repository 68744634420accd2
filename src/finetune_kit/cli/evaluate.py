"""``finetune-kit evaluate``: test a checkpoint on the test set of the run that wrote it."""

from __future__ import annotations

import argparse
import json

from finetune_kit.cli.common import add_overrides

NAME = "evaluate"
HELP = "evaluate a checkpoint on its test set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit evaluate``."""
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a run directory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--data-root", help="where the run's dataset is now (data.root), if it moved")
    add_overrides(p, example="data.options.cache=true")


def run(args: argparse.Namespace) -> int:
    """Print the test report of the checkpoint."""
    from finetune_kit.training.from_config import evaluate_checkpoint

    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={json.dumps(args.data_root)}")
    evaluate_checkpoint(args.checkpoint, device=args.device, overrides=overrides)
    return 0
