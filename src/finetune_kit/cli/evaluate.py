"""``finetune-kit evaluate``: test a checkpoint on the test set of the run that wrote it."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "evaluate a checkpoint on its test set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit evaluate``."""
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a run directory")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    """Print the test report of the checkpoint."""
    from finetune_kit.training.from_config import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, device=args.device)
    return 0
