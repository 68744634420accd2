"""Which CPU settings pay off: memory format, bfloat16 autocast and thread count, per model.

For each model and each setting -- ``channels_last`` or not, float32 or bfloat16 autocast --
the hand-written loop of ``trainer_overhead.py`` (``HandLoop``: the data in memory as uint8,
gather, normalise, forward, backward, SGD) trains on synthetic data of the model's input
shape, and the step time is taken over ``--batches`` steps after ``--warmup`` untimed ones, in
wall-clock and in the process's CPU time. The settings (and ``--threads`` counts) take turns
within each repeat, so a machine whose load changes slows them alike; the median of the repeats
is reported, with the speed-up over the first combination (the first thread count, float32
NCHW by default).

Run::

    python benchmarks/cpu_settings.py                               # the small nets, ~2 min
    python benchmarks/cpu_settings.py --models resnet18_32 --batch-size 64 --batches 4
    python benchmarks/cpu_settings.py --threads 1 2                 # both thread counts
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from common import (
    MODEL_CASES,
    build_model,
    describe,
    environment,
    markdown_table,
    synthetic_bundle,
    write_json,
)
from trainer_overhead import HandLoop

from finetune_kit.runtime import PrecisionMode

__all__ = ["SETTINGS", "main", "measure"]

CPU = torch.device("cpu")
SETTINGS = [
    {"format": fmt, "precision": prec}
    for fmt, prec in itertools.product(("nchw", "nhwc"), ("32", "bf16-mixed"))
]
NAMES = [f"{s['format']}/{s['precision']}" for s in SETTINGS]  # for --settings, e.g. "nhwc/32"


def measure(
    key: str, setting: dict[str, str], *, batch_size: int, warmup: int, batches: int
) -> tuple[float, float]:
    """Milliseconds per training step of one model and setting: ``(wall, cpu)``.

    Example:
        >>> wall, cpu = measure("lenet_16", SETTINGS[0], batch_size=4, warmup=1, batches=1)
        >>> wall > 0 and cpu >= 0
        True
    """
    case = MODEL_CASES[key]
    bundle = synthetic_bundle(case, batch_size * (warmup + batches))
    loop = HandLoop(
        build_model(case),
        bundle.train.images,
        bundle.train.targets,
        mean=bundle.mean,
        std=bundle.std,
        device=CPU,
        batch_size=batch_size,
        precision=setting["precision"],
        channels_last=setting["format"] == "nhwc",
    )
    wall, cpu = loop.timed(warmup=warmup, steps=batches)
    return wall / batches * 1e3, cpu / batches * 1e3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODEL_CASES), default=["bn_convnet_28", "convnet_28"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="rounds over all settings")
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="thread counts")
    p.add_argument("--settings", nargs="+", choices=NAMES, default=NAMES, help="the first is the baseline")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every model x setting x thread count; print the table; return the results."""
    args = parse_args(argv)
    env = environment(CPU)
    print(describe(env))
    native = PrecisionMode.resolve("auto", CPU).name == "bf16-mixed"
    print(
        f"# bfloat16 native on this CPU: {native}; batch {args.batch_size}, {args.batches} timed steps",
        flush=True,
    )
    previous = torch.get_num_threads()
    settings = [SETTINGS[NAMES.index(name)] for name in args.settings]
    rows = []
    sizes = {"batch_size": args.batch_size, "warmup": args.warmup, "batches": args.batches}
    try:
        for key in args.models:
            combos = list(itertools.product(args.threads, settings))
            times: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(combos))}
            for _ in range(args.repeats):  # every combination once per round: load hits all alike
                for i, (threads, setting) in enumerate(combos):
                    torch.set_num_threads(threads)
                    times[i].append(measure(key, setting, **sizes))
            base_wall, base_cpu = (statistics.median(t[j] for t in times[0]) for j in (0, 1))
            for i, (threads, setting) in enumerate(combos):
                wall, cpu = (statistics.median(t[j] for t in times[i]) for j in (0, 1))
                row = {"model": key, "threads": threads, **setting, "wall_ms": wall, "cpu_ms": cpu}
                rows.append(row | {"speedup_wall": base_wall / wall, "speedup_cpu": base_cpu / cpu})
                print(
                    f"  {key} threads={threads} {setting}: {wall:.1f} ms wall, {cpu:.1f} ms CPU", flush=True
                )
    finally:
        torch.set_num_threads(previous)
    columns = ["model", "threads", "format", "precision", "wall_ms", "cpu_ms", "speedup_wall", "speedup_cpu"]
    print()
    print(markdown_table(rows, columns))
    result = {"benchmark": "cpu_settings", "environment": env, "bf16_native": native, "rows": rows}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
