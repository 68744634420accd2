"""CPU inference speed of a deployed model: eager PyTorch vs onnxruntime, and predict start-up.

For ``convnet`` and ``resnet18`` (``small_input``), 3 x 32 x 32 inputs, 10 classes, random
weights (speed does not depend on them): the model is exported with ``finetune_kit.export``
and timed

* in eager PyTorch (eval mode, ``torch.inference_mode``) and in onnxruntime (CPU provider), with
  the same number of threads (``--threads``);
* latency of one image (median of ``--repeats`` calls after warm-up) and throughput at batch
  ``--batch`` (64; images/s of the median call).

Then the start-up of the command line: a fresh ``python -m finetune_kit predict --model
model.onnx IMAGE`` process (onnxruntime, no PyTorch) against ``--checkpoint EXPORT_DIR`` (the
safetensors export, PyTorch), wall time of the whole process, median of ``--startup-repeats``.

Run::

    python benchmarks/deploy_latency.py --threads 1
    python benchmarks/deploy_latency.py --models convnet --repeats 5 --startup-repeats 1

Prints Markdown tables; the latency figures in docs/guide/deploy.md come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import REPO_ROOT, describe, environment, markdown_table, torch_threads, write_json
from PIL import Image

import finetune_kit as fk
from finetune_kit.inference import OnnxModel

MODELS = {"convnet": {"input_size": 32}, "resnet18": {"small_input": True}}
SIDE, CHANNELS, CLASSES = 32, 3, 10


def median_seconds(call: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """The median wall time of ``call()`` over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def exported(name: str, folder: Path) -> tuple[torch.nn.Module, Path]:
    """The model with random weights, eval mode, and its export directory (safetensors + ONNX)."""
    model = fk.create_model(name, num_classes=CLASSES, in_channels=CHANNELS, **MODELS[name]).eval()
    meta = {
        "class_names": [f"class_{i}" for i in range(CLASSES)],
        "in_channels": CHANNELS,
        "image_size": [SIDE, SIDE],
        "input_size": [SIDE, SIDE],
        "mean": [0.5] * CHANNELS,
        "std": [0.25] * CHANNELS,
    }
    fk.export(model, folder, format="safetensors", meta=meta)
    fk.export(model, folder / "model.onnx", format="onnx", meta=meta)
    return model, folder


def speed(name: str, folder: Path, *, threads: int, batch: int, repeats: int) -> list[dict[str, Any]]:
    """Latency (1 image) and throughput (``batch`` images) of eager PyTorch and onnxruntime."""
    model, folder = exported(name, folder)
    session = OnnxModel(folder / "model.onnx", threads=threads)
    rows = []
    for size in (1, batch):
        x = torch.randn(size, CHANNELS, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
        x_np = x.numpy()

        def eager(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        with torch_threads(threads):
            torch_s = median_seconds(eager, repeats)
        onnx_s = median_seconds(lambda x_np=x_np: session.run(x_np), repeats)
        for runtime, seconds in (("torch eager", torch_s), ("onnxruntime", onnx_s)):
            rows.append(
                {
                    "model": name,
                    "runtime": runtime,
                    "batch": size,
                    "ms_per_call": seconds * 1e3,
                    "img_s": size / seconds,
                }
            )
    return rows


def startup(folder: Path, image: Path, repeats: int) -> list[dict[str, Any]]:
    """Wall time of a fresh ``finetune-kit predict`` process, ONNX vs PyTorch."""
    rows = []
    for label, flag, source in (
        ("onnxruntime (--model model.onnx)", "--model", folder / "model.onnx"),
        ("torch (--checkpoint export dir)", "--checkpoint", folder),
    ):
        command = [sys.executable, "-m", "finetune_kit", "predict", flag, str(source), str(image)]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)
            times.append(time.perf_counter() - start)
        rows.append({"predict": label, "median_s": statistics.median(times), "min_s": min(times)})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=1, help="threads of both runtimes")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = environment("cpu")
    env["threads"] = args.threads
    speeds, starts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            folder = Path(tmp) / name
            speeds += speed(name, folder, threads=args.threads, batch=args.batch, repeats=args.repeats)
        image = Path(tmp) / "image.png"
        pixels = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
        if args.startup_repeats:
            starts = startup(Path(tmp) / args.models[0], image, args.startup_repeats)
    print(describe(env) + f"\n# threads per runtime: {args.threads}")
    print(markdown_table(speeds, ["model", "runtime", "batch", "ms_per_call", "img_s"]))
    if starts:
        print()
        print(markdown_table(starts, ["predict", "median_s", "min_s"]))
    result = {"environment": env, "speed": speeds, "startup": starts}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
