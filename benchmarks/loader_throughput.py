"""Loader throughput (images/s) of the two loader paths, on the CPU and, if present, a GPU.

Synthetic data shaped like Fashion-MNIST (60,000 x 1 x 28 x 28, preset ``fashion``: crop with
2-pixel padding + flip) and CIFAR-10 (50,000 x 3 x 32 x 32, preset ``cifar``: crop with 4-pixel
padding + flip), batch 512, training loaders (shuffled and augmented), timed over ``--batches``
batches after a warm-up. On CUDA a third case resizes CIFAR to 224 (preset ``imagenet``).

Run::

    python benchmarks/loader_throughput.py                      # CPU (+ CUDA when available)
    python benchmarks/loader_throughput.py --devices cpu --workers 0 2 --batches 30

Prints a Markdown table; the figures in docs/guide/data.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from finetune_kit.data import create_datasets, make_loaders

SHAPES = {
    "fashion_mnist-like 1x28x28": (60_000, 1, 28, "fashion"),
    "cifar10-like 3x32x32": (50_000, 3, 32, "cifar"),
    "cifar10-like -> 224 (imagenet)": (50_000, 3, 32, "imagenet"),
}


def synthetic(n: int, channels: int, size: int, preset: str):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    return create_datasets("tensors", train=(images, labels), val_fraction=0, preset=preset)


def measure(loader, batches: int, device: torch.device) -> float:
    """Images per second over ``batches`` batches after two warm-up batches."""
    it = loader.iter_epoch(0)
    for _ in range(2):
        next(it)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    seen = 0
    for _, (x, _y) in zip(range(batches), it, strict=False):
        seen += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per case")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to try"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"# CPU: {cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    if torch.cuda.is_available():
        print(f"# GPU: {torch.cuda.get_device_name()}")
    print("| data | device | loader | img/s |")
    print("| --- | --- | --- | ---: |")
    for label, (n, channels, size, preset) in SHAPES.items():
        bundle = synthetic(n, channels, size, preset)
        for name in devices:
            device = torch.device(name)
            if preset == "imagenet" and device.type != "cuda":
                continue
            cases = [("device", 0)] + [("dataloader", w) for w in args.workers]
            for kind, workers in cases:
                loaders = make_loaders(
                    bundle,
                    batch_size=args.batch_size,
                    device=device,
                    loader=kind,
                    num_workers=workers,
                )
                rate = measure(loaders.train, args.batches, device)
                what = "DeviceLoader" if kind == "device" else f"DataLoader, {workers} workers"
                print(f"| {label} | {name} | {what} | {rate:,.0f} |", flush=True)
                del loaders


if __name__ == "__main__":
    main()
