"""``finetune-kit predict``: the classes of image files, as a table."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "predict"
HELP = "predict the classes of image files with a trained model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit predict``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", help="an export directory, a .ckpt file or a run directory (runs in PyTorch)"
    )
    source.add_argument("--model", help="a .onnx file (runs in onnxruntime, without PyTorch)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image")
    p.add_argument("--device", default="cpu", help="where the PyTorch model runs: cpu, cuda, cuda:N, mps")
    p.add_argument(
        "--explain",
        metavar="DIR",
        help="also write what the model looked at: a Grad-CAM heatmap over each image, for its "
        "predicted class, as DIR/<image>.gradcam.png (existing files are never replaced)",
    )


def run(args: argparse.Namespace) -> int:
    """Print one row per image: its ``top_k`` classes with their probabilities."""
    from finetune_kit.inference import predict

    if args.explain is not None:
        return _predict_and_explain(args)
    source = args.model or args.checkpoint
    print(predict(source, args.images, top_k=args.top_k, device=args.device).table())
    return 0


def _predict_and_explain(args: argparse.Namespace) -> int:
    from finetune_kit.analysis.figures import require_matplotlib
    from finetune_kit.errors import ConfigError
    from finetune_kit.inference import load_model, predict
    from finetune_kit.inference.gradcam import explain, explanation_paths, save_explanations

    if args.checkpoint is None:
        raise ConfigError(
            "--explain needs the PyTorch model (Grad-CAM follows its gradients); pass "
            "--checkpoint RUN_OR_EXPORT instead of --model FILE.onnx."
        )
    require_matplotlib()
    paths = explanation_paths(args.explain, [Path(image).stem for image in args.images])
    loaded = load_model(args.checkpoint, device=args.device)
    print(predict(loaded, args.images, top_k=args.top_k, device=args.device).table())
    explanation = explain(loaded, args.images, device=args.device)
    save_explanations(explanation, paths, meta=loaded.meta)
    print(f"Grad-CAM heatmaps (layer {explanation.layer}) written to {args.explain}/*.gradcam.png")
    return 0
