"""``finetune-kit export``: a run's model as safetensors, ONNX and/or a ``torch.export`` program."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a run's model (safetensors + JSON, ONNX, torch.export), checked against PyTorch"
FORMATS = ("safetensors", "onnx", "torch_export", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit export``."""
    p.add_argument("--checkpoint", required=True, help="a .ckpt file, a run directory or an export directory")
    p.add_argument(
        "--output", required=True, help="directory, or NAME.safetensors / NAME.onnx / NAME.pt2, to write"
    )
    p.add_argument(
        "--format", choices=FORMATS, default="safetensors", help="what to write (default: safetensors)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    p.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="ONNX/torch.export: normalise in the graph, which then takes uint8 (N, C, H, W)",
    )
    p.add_argument(
        "--probabilities", action="store_true", help="ONNX/torch.export: output probabilities beside logits"
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip running the artifact beside the PyTorch model"
    )
    p.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest |difference| the check accepts (default 1e-4)"
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 18 to 23 (default 20)")


def run(args: argparse.Namespace) -> int:
    """Write the export; print each file and, for ONNX and torch.export, the checked difference."""
    from finetune_kit.inference.export import DEFAULT_OPSET, export_artifacts

    artifacts = export_artifacts(
        args.checkpoint,
        args.output,
        format=args.format,
        use_ema=not args.no_ema,
        overwrite=args.overwrite,
        with_preprocessing=args.with_preprocessing,
        probabilities=args.probabilities,
        check=not args.no_check,
        tolerance=args.tolerance,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
    )
    for artifact in artifacts:
        print(f"Exported {artifact.summary()}")
    return 0
