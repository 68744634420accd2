"""The command line shared by the example scripts, and what they print at the end.

Every example takes the same flags:

``--smoke``
    A few steps on small data (``fake`` images shaped like the real dataset, or a tiny real
    subset where the data is on disk), a model without pretrained weights, a temporary run
    directory: nothing is downloaded and the run takes seconds. The test suite runs every
    example this way.
``--output-dir DIR``
    The run directory (default ``runs/<example>``; with ``--smoke``, a temporary one removed at exit).
``--overwrite``
    Reuse an existing run directory (only one that holds a previous run).
``--resume CKPT``
    Continue a stopped run from its checkpoint (or its run directory).
``--epochs N``, ``--device DEV``, ``--precision P``, ``--data-root DIR``
    As the keys of the same names in a config file.

This module is not part of the library: it only keeps the examples short.
"""

from __future__ import annotations

import argparse
import atexit
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import finetune_kit as fk


def example_parser(description: str, *, epochs: int) -> argparse.ArgumentParser:
    """The argument parser of an example, with the flags of the module docstring.

    Args:
        description: the first line of the example's docstring.
        epochs: the recipe's number of epochs (the ``--epochs`` default).

    Returns:
        The parser; an example may add its own flags before parsing.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--smoke", action="store_true", help="one short epoch on small data, no downloads (seconds)"
    )
    parser.add_argument("--output-dir", help="run directory (default: runs/<example>)")
    parser.add_argument("--overwrite", action="store_true", help="reuse an existing run directory")
    parser.add_argument("--resume", metavar="CKPT", help="checkpoint or run directory to resume")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--precision",
        default="32",
        choices=["32", "bf16-mixed", "16-mixed"],
        help="32, bf16-mixed or 16-mixed (default 32)",
    )
    parser.add_argument("--data-root", help="folder to search first for the dataset files")
    return parser


def output_dir(args: argparse.Namespace, name: str) -> str:
    """The run directory: ``--output-dir``, a new temporary one for ``--smoke``, or ``runs/NAME``."""
    if args.output_dir:
        return args.output_dir
    if args.smoke:  # removed when the script ends: a smoke run leaves nothing behind
        scratch = tempfile.mkdtemp(prefix=f"{name}-smoke-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        return str(Path(scratch) / "run")
    return f"runs/{name}"


def trainer_options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The Trainer options every example takes from its command line."""
    options: dict[str, Any] = {
        "epochs": args.epochs,
        "device": args.device,
        "precision": args.precision,
        "output_dir": output_dir(args, name),
        "overwrite": args.overwrite,
    }
    if args.smoke:
        options.update(epochs=1, progress=False)  # one epoch of a few batches (smoke_data)
    return options


def smoke_data(*, in_channels: int, image_size: int, num_classes: int = 10) -> fk.DataBundle:
    """``fake`` images shaped like a real dataset: 32 to train (4 of them validate), 16 to test.

    An epoch of it is one batch for most recipes (a few for small batch sizes).
    """
    return fk.create_datasets(
        "fake",
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        train_size=32,
        test_size=16,
        val_fraction=0.125,
        seed=0,
    )


def machine() -> str:
    """One line on where this ran: processor (or GPU), torch version and threads."""
    if torch.cuda.is_available():
        where = torch.cuda.get_device_name(0)
    else:
        where = _cpu_model() or platform.processor() or platform.machine()
    return f"{where}; torch {torch.__version__}; {torch.get_num_threads()} threads"


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return None
    for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def print_results(
    history: fk.History, report: fk.ClassificationReport, seconds: float, *, run_dir: Path
) -> None:
    """The closing lines of an example: accuracies, time, machine and run directory."""
    val = [v for v in (row.get("val_accuracy") for row in history.rows) if v is not None]
    best_val = f"{max(val):.4f}" if val else "n/a"
    print(f"\nbest validation accuracy: {best_val}; test accuracy: {report.accuracy:.4f}")
    print(f"training + test time: {seconds:.1f} s on {machine()}")
    print(f"run directory: {run_dir}")


def fit_and_report(trainer: fk.Trainer, args: argparse.Namespace) -> int:
    """Fit (resuming if asked), test, print the results; the exit status of the example."""
    started = time.perf_counter()
    history = trainer.fit(resume=args.resume)
    if history.interrupted:
        return 130
    report = trainer.test()
    print_results(history, report, time.perf_counter() - started, run_dir=trainer.run_dir.root)
    return 0


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run an example's ``main``, printing a library error as one line (exit status 2)."""
    started = time.perf_counter()
    try:
        status = main(argv)
    except fk.FinetuneKitError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"(the whole script took {time.perf_counter() - started:.1f} s)")
    return status
