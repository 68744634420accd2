"""``finetune-kit export``: a run's weights as a deployment artifact."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a run's weights as safetensors plus a JSON of metadata"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit export``."""
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a run directory")
    p.add_argument("--output", required=True, help="directory (or NAME.safetensors) to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")


def run(args: argparse.Namespace) -> int:
    """Write the export and say where."""
    from finetune_kit.inference import export

    path = export(args.checkpoint, args.output, use_ema=not args.no_ema, overwrite=args.overwrite)
    print(f"Exported to {path}")
    return 0
