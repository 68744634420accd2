"""Measure a tutorial's recipe on real Fashion-MNIST, where its own dataset cannot be had.

The MNIST and CIFAR-10 recipes of the tutorials run here unchanged except for what the machine
cannot provide:

- the data: Fashion-MNIST instead of MNIST (same 28x28 grayscale format); for the CIFAR-10
  recipes, Fashion-MNIST resized to 32x32 (bilinear, antialiased) and made 3-channel with the
  ``data.channels`` key, registered below as the dataset ``fashion_mnist_32``;
- the weights: no ImageNet weights (they cannot be downloaded), so ``model.weights`` is unset
  and the network starts from a random initialisation;
- the size: ``--train-images``/``--test-images``/``--epochs`` shrink the run to a few minutes
  on 2 CPU cores.

Each run writes ``docs/figures/data/tutorial_<recipe>.json`` (the command, the machine, the
wall time, the history and the test report), which ``make_figures.py`` draws and the tutorial
pages quote.

Usage::

    python docs/figures/run_tutorial.py cifar10_lenet --train-images 20000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import finetune_kit as fk
from finetune_kit.config import RunConfig, apply_overrides, load_config
from finetune_kit.data import DatasetParts, ImageTensorDataset
from finetune_kit.training import build_trainer

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"


def _subset(ds: ImageTensorDataset, n: int | None, seed: int) -> ImageTensorDataset:
    """At most ``n`` images of ``ds``, drawn at random with ``seed`` (all classes keep ~n/10)."""
    if n is None or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    return ds.subset(torch.randperm(len(ds), generator=g)[:n].sort().values)


def _resized(ds: ImageTensorDataset, size: int) -> ImageTensorDataset:
    images = F.interpolate(ds.images.float(), size=(size, size), mode="bilinear", antialias=True)
    images = images.round().clamp(0, 255).to(torch.uint8)
    return ImageTensorDataset(images, ds.targets, ds.class_names, source=ds.source)


def _fashion_parts(train_images, test_images, seed, size=None) -> DatasetParts:
    parts = fk.data.builtin.fashion_mnist(download=False)
    train, test = _subset(parts.train, train_images, seed), _subset(parts.test, test_images, seed + 1)
    if size is not None:
        train, test = _resized(train, size), _resized(test, size)
    return DatasetParts(
        train=train, test=test, class_names=parts.class_names, default_preset="cifar", source=parts.source
    )


@fk.register_dataset("fashion_mnist_sub")
def fashion_mnist_sub(*, train_images=None, test_images=None, seed=0) -> DatasetParts:
    """Fashion-MNIST at 28x28, optionally a random subset of each split."""
    parts = _fashion_parts(train_images, test_images, seed)
    parts.default_preset = "fashion"
    return parts


@fk.register_dataset("fashion_mnist_32")
def fashion_mnist_32(*, train_images=None, test_images=None, seed=0) -> DatasetParts:
    """Fashion-MNIST resized to 32x32 (CIFAR-10's size), optionally a random subset of each split."""
    return _fashion_parts(train_images, test_images, seed, size=32)


def config_for(recipe: str, args: argparse.Namespace, output_dir: str) -> RunConfig:
    """The recipe's config with the data, weights and size this machine can run."""
    config = load_config(ROOT / "examples" / "configs" / f"{recipe}.toml")
    raw = config.to_dict()
    cifar = recipe.startswith("cifar10")
    raw["data"]["dataset"] = "fashion_mnist_32" if cifar else "fashion_mnist_sub"
    raw["data"]["options"] = {"train_images": args.train_images, "test_images": args.test_images}
    if cifar:
        raw["data"]["channels"] = 3
    raw["model"].pop("weights", None)  # random initialisation: ImageNet weights cannot be downloaded
    raw["train"].update(
        epochs=args.epochs, output_dir=output_dir, overwrite=True, device="cpu", progress=False, plots=False
    )
    return apply_overrides(RunConfig.from_dict(raw, source=recipe), args.set)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="a config of examples/configs, e.g. cifar10_lenet")
    parser.add_argument(
        "--train-images", type=int, default=None, help="training images (before the val split)"
    )
    parser.add_argument("--test-images", type=int, default=None, help="test images")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--set", action="append", default=[], help="extra config override")
    parser.add_argument("--output-dir", default=None, help="run directory (default: a folder in /tmp)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where the result file goes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.output_dir or f"/tmp/finetune_kit_tutorials/{args.recipe}"
    config = config_for(args.recipe, args, out)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer = build_trainer(config)
    history = trainer.fit()
    report = trainer.test(print_report=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    result = {
        "recipe": args.recipe,
        "command": "python docs/figures/run_tutorial.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, no GPU",
        "date": time.strftime("%Y-%m-%d"),
        "data": {
            "dataset": config.data.dataset,
            "train": len(trainer.data.train),
            "val": len(trainer.data.val),
            "test": len(trainer.data.test),
            "shape": [trainer.data.in_channels, *trainer.data.input_size],
        },
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "history": history.rows,
        "test_accuracy": report.accuracy,
        "confusion": report.confusion,
        "class_names": list(trainer.data.class_names),
    }
    args.data_dir.mkdir(parents=True, exist_ok=True)
    path = args.data_dir / f"tutorial_{args.recipe}.json"
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"{args.recipe}: test accuracy {report.accuracy:.4f}, wall {wall:.0f} s, cpu {cpu:.0f} s -> {path}")


if __name__ == "__main__":
    main()
