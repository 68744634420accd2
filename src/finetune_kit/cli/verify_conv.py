"""``finetune-kit verify-conv``: check the from-scratch convolution against PyTorch."""

from __future__ import annotations

import argparse

NAME = "verify-conv"
HELP = "check the from-scratch convolution against PyTorch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit verify-conv``."""
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="also verify a whole converted model, e.g. resnet18")


def run(args: argparse.Namespace) -> int:
    """Print the check table; exit 1 when a check fails."""
    from finetune_kit.scratch import run_verify

    text, passed = run_verify(device=args.device, model=args.model)
    print(text)
    return 0 if passed else 1
