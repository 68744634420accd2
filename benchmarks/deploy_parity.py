"""Parity of the deployment artifacts: ONNX (onnxruntime, CPU) and torch.export vs eager PyTorch.

For every registered model (or ``--models``), at its preset input size (``small_input`` 32-pixel
ResNets; ``vgg11_bn`` at 32, the smallest its torchvision builder allows, ``--vgg-size`` to
change it): build it with a few classes, give its BatchNorm layers the statistics of a batch of
images (a fresh network's identity statistics make deep ResNets' logits explode, where float32
rounding alone exceeds any absolute tolerance; a trained network has real statistics), export
it with ``finetune_kit.export(..., format="all")``, load ``model.onnx`` in onnxruntime and
``model.pt2`` with ``torch.export.load``, and report the largest absolute difference of their
logits from the eval-mode model's on a fresh batch, in float32; beside it, how far eager float32
PyTorch itself is from the same model in float64 (the rounding noise of the model).

With ``--fashion-mnist ROOT``, a convnet is also trained for ``--steps`` steps (batch 32) on
real Fashion-MNIST, exported (the export checks itself), and its predictions on 1,000 test
images from PyTorch, onnxruntime and the saved program are compared (top-1 agreement, max
difference of logits).

Run::

    python benchmarks/deploy_parity.py                       # every registered model
    python benchmarks/deploy_parity.py --models convnet resnet18 --batch 4
    python benchmarks/deploy_parity.py --models lenet --fashion-mnist /usr/share/datasets/fashion-mnist

Prints a Markdown table; the parity table in docs/guide/deploy.md comes from this script.
"""

from __future__ import annotations

import argparse
import copy
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
    "bn_convnet": (1, 28, {}),
    "convnet": (1, 28, {}),
    "lenet": (1, 32, {}),
    "resnet9": (3, 32, {}),
    **{
        name: (3, 32, {"small_input": True})
        for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2")
    },
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
        exact = copy.deepcopy(model).double()(x.double())
    got = artifact_logits(folder, x)
    return {
        "model": name,
        "input": f"{meta['in_channels']}x{side}x{side}",
        "onnx_max_abs_diff": float((got["onnx"] - reference).abs().max()),
        "torch_export_max_abs_diff": float((got["torch_export"] - reference).abs().max()),
        "eager_fp32_vs_fp64": float((reference.double() - exact).abs().max()),
        "logit_std": float(reference.std()),
        "onnx_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
        "export_s": round(seconds, 1),
    }


def fashion_mnist(root: str, folder: Path, *, steps: int, n_test: int) -> dict[str, Any]:
    """A convnet trained ``steps`` steps on real Fashion-MNIST: PyTorch vs its ONNX and program."""
    full = fk.create_datasets("fashion_mnist", root=root, val_fraction=0.0)
    n_train = 32 * steps
    data = fk.create_datasets(
        "tensors",
        train=(full.train.images[:n_train], full.train.targets[:n_train]),
        test=(full.test.images[:n_test], full.test.targets[:n_test]),
        class_names=full.class_names,
        val_fraction=0.0,
        preset="fashion",
    )
    model = fk.create_model("convnet", num_classes=10, in_channels=1)
    trainer = fk.Trainer(
        model,
        data,
        epochs=1,
        batch_size=32,
        lr=0.05,
        scheduler="onecycle",
        ema=0.99,
        progress=False,
        output_dir=str(folder / "run"),
    )
    trainer.fit()
    exported = fk.export(trainer.run_dir.root, folder / "exported", format="all")
    images = data.test.images
    by_torch = fk.predict(trainer.run_dir.root, images)
    by_onnx = fk.predict(exported / "model.onnx", images.numpy())
    program = torch.export.load(exported / "model.pt2").module()
    with torch.no_grad():
        by_program = program(fk.data.eval_transform_from_meta(data.meta())(images))
    onnx_logits = torch.from_numpy(by_onnx.logits)
    return {
        "model": "convnet (trained)",
        "test_images": len(images),
        "accuracy": float((by_torch.indices == data.test.targets).float().mean()),
        "top1_agree_onnx": int((onnx_logits.argmax(1) == by_torch.indices).sum()),
        "top1_agree_torch_export": int((by_program.argmax(1) == by_torch.indices).sum()),
        "onnx_max_abs_diff": float((onnx_logits - by_torch.logits).abs().max()),
        "torch_export_max_abs_diff": float((by_program - by_torch.logits).abs().max()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="images compared per model")
    parser.add_argument(
        "--fashion-mnist", metavar="ROOT", default=None, help="also train a convnet on the real data at ROOT"
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps of the Fashion-MNIST model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = environment("cpu")
    rows, trained = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(parity(name, Path(tmp) / name, classes=args.classes, batch=args.batch))
            print(f"# {name}: done", flush=True)
        if args.fashion_mnist:
            trained.append(
                fashion_mnist(args.fashion_mnist, Path(tmp) / "fmnist", steps=args.steps, n_test=1000)
            )
    print(describe(env))
    print(markdown_table(rows, list(rows[0])))
    if trained:
        print()
        print(markdown_table(trained, list(trained[0])))
    result = {"environment": env, "results": rows, "trained": trained}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
