"""``finetune-kit verify-conv``: check the from-scratch convolution against PyTorch."""

from __future__ import annotations

import argparse

NAME = "verify-conv"
HELP = "check the from-scratch convolution against PyTorch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit verify-conv``."""
    p.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N to check against cuDNN")
    p.add_argument(
        "--model",
        default=None,
        help="also verify a whole model of the registry, converted to scratch layers, at its "
        "preset input size (finetune-kit list models)",
    )
    p.add_argument("--image-size", type=int, help="the model's input size (default: its preset size)")


def run(args: argparse.Namespace) -> int:
    """Print the check table; exit 1 when a check fails."""
    from finetune_kit.scratch import run_verify

    model, size, channels = None, 64, 3
    if args.model is not None:
        from finetune_kit.models import create_model, model_info

        model = create_model(args.model, num_classes=10)  # random weights: nothing downloaded
        info = model_info(model)
        size, channels = info.input_size, info.in_channels
    if args.image_size is not None:
        size = args.image_size
    text, passed = run_verify(device=args.device, model=model, image_size=size, in_channels=channels)
    print(text)
    return 0 if passed else 1
