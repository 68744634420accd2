"""``finetune-kit predict``: the classes of image files, as a table."""

from __future__ import annotations

import argparse

NAME = "predict"
HELP = "predict the classes of image files with a trained model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit predict``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="an export directory, a .ckpt file or a run directory")
    source.add_argument("--model", help="a .onnx file (runs in onnxruntime, without PyTorch)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    """Print one row per image: its ``top_k`` classes with their probabilities."""
    from finetune_kit.inference import predict

    source = args.model or args.checkpoint
    print(predict(source, args.images, top_k=args.top_k, device=args.device).table())
    return 0
