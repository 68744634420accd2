"""Parity of the deployment artifacts: ONNX (onnxruntime, CPU) and torch.export vs eager PyTorch.

For every registered model (or ``--models``), at its preset input size (``small_input`` 32-pixel
ResNets; ``vgg11_bn`` at 32, the smallest its torchvision builder allows, ``--vgg-size`` to
change it): build it with a few classes, give its BatchNorm layers the statistics of a batch of
images (a fresh network's identity statistics make deep ResNets' logits explode, where float32
rounding alone exceeds any absolute tolerance; a trained network has real statistics), export
it with ``finetune_kit.export(..., format="all")``, load ``model.onnx`` in onnxruntime and
``model.pt2`` with ``torch.export.load``, and report the largest absolute difference of their
logits from the eval-mode model's on a fresh batch, in float32.

Run::

    python benchmarks/deploy_parity.py                       # every registered model
    python benchmarks/deploy_parity.py --models convnet resnet18 --batch 4

Prints a Markdown table; the parity table in docs/guide/deploy.md comes from this script.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import describe, environment, markdown_table, write_json
from torch import nn

import finetune_kit as fk
from finetune_kit.inference import OnnxModel

# model -> (input channels, input side, create_model options)
CASES: dict[str, tuple[int, int, dict[str, Any]]] = {
    "convnet": (1, 28, {}),
    "lenet": (1, 32, {}),
    "resnet9": (3, 32, {}),
    **{name: (3, 32, {"small_input": True}) for name in fk.list_models("*resnet*") if name != "resnet9"},
    "mobilenet_v3_small": (3, 224, {}),
    "mobilenet_v3_large": (3, 224, {}),
    "efficientnet_b0": (3, 224, {}),
    "vgg11_bn": (3, 32, {}),
}


def calibrated(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """``model`` in eval mode with BatchNorm running statistics averaged over ``images``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for chunk in images.split(8):
            model(chunk)
    return model.eval()


def build(name: str, *, classes: int, size: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model ``name`` at its case's size, calibrated, with the data metadata to export it."""
    channels, side, options = CASES[name]
    side = size or side
    if name in ("convnet", "lenet"):
        options = {**options, "input_size": side}
    model = fk.create_model(name, num_classes=classes, in_channels=channels, **options)
    gen = torch.Generator().manual_seed(0)
    model = calibrated(model, torch.randn(16, channels, side, side, generator=gen))
    meta = {
        "class_names": [f"class_{i}" for i in range(classes)],
        "in_channels": channels,
        "image_size": [side, side],
        "input_size": [side, side],
        "mean": [0.5] * channels,
        "std": [0.25] * channels,
    }
    return model, meta


def artifact_logits(folder: Path, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The logits of the written ``model.onnx`` and ``model.pt2`` on ``x``, loaded as a user would."""
    onnx = torch.from_numpy(OnnxModel(folder / "model.onnx").run(x.numpy()))
    program = torch.export.load(folder / "model.pt2").module()
    with torch.no_grad():
        exported = program(x)
    return {"onnx": onnx, "torch_export": exported}


def parity(name: str, folder: Path, *, classes: int, batch: int, size: int | None = None) -> dict[str, Any]:
    """Export ``name`` into ``folder`` and measure both artifacts against eager PyTorch."""
    model, meta = build(name, classes=classes, size=size)
    start = time.perf_counter()
    fk.export(model, folder, format="all", meta=meta, check=False, overwrite=True)
    seconds = time.perf_counter() - start
    side = meta["input_size"][0]
    x = torch.randn(batch, meta["in_channels"], side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(x)
    got = artifact_logits(folder, x)
    return {
        "model": name,
        "input": f"{meta['in_channels']}x{side}x{side}",
        "onnx_max_abs_diff": float((got["onnx"] - reference).abs().max()),
        "torch_export_max_abs_diff": float((got["torch_export"] - reference).abs().max()),
        "logit_std": float(reference.std()),
        "onnx_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
        "export_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="images compared per model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = environment("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(parity(name, Path(tmp) / name, classes=args.classes, batch=args.batch))
            print(f"# {name}: done", flush=True)
    print(describe(env))
    print(markdown_table(rows, list(rows[0])))
    result = {"environment": env, "results": rows}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
