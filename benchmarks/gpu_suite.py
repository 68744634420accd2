"""The GPU suite: every GPU figure of docs/benchmarks.md from one command, in under 8 minutes.

On one CUDA GPU (sized for an H100/H200), in this order, each step recorded even when another
fails:

1. **throughput** -- images/s of (a) the plain PIL/DataLoader loop, (b) the hand-tuned loop
   and (c) ``fk.Trainer``, for ResNet-18 at 32 and 224 and ResNet-50 at 224 (``throughput.py``
   at its GPU sizes: batch 512, bf16, 50 timed steps); goals c/b >= 0.97, c/a >= 15;
2. **time to 94%** -- real Fashion-MNIST, the fast GPU recipe
   ``examples/configs/fashion_mnist_fast.toml`` (``time_to_accuracy.py``); goal <= 10 s;
3. **scratch conv vs cuDNN** -- forward+backward of every ResNet-18 conv shape at 224, batch
   128, float32, TF32 off (``conv_benchmark.py``), and ``finetune_kit.scratch.verify_conv``
   against cuDNN (the default configurations and a converted ResNet-18);
4. **cuda tests** -- ``pytest -m cuda`` over the test files that have such tests.

It writes ``gpu_suite.json`` (everything) and ``gpu_suite.md`` (the tables) to ``--out``.
Without a GPU it says so and exits (status 0, nothing run), unless ``--smoke``: tiny sizes that
run on the CPU in about a minute, which the test suite uses so that the suite cannot rot.

Run (the data: the four Fashion-MNIST ``.gz`` files, e.g. from
``/usr/share/datasets/fashion-mnist``)::

    python benchmarks/gpu_suite.py --data-dir /path/to/fashion-mnist --out gpu_suite_out
    python benchmarks/gpu_suite.py --smoke --data-dir /usr/share/datasets/fashion-mnist --out /tmp/s
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from common import REPO_ROOT, describe, environment, markdown_table, write_json

__all__ = ["REQUIRED", "SIZES", "cuda_test_files", "main", "missing_packages"]

# Every package a step imports: checked first, so a bare machine fails in one clear line.
STEPS = ("throughput", "time_to_94", "conv", "cuda_tests")
REQUIRED = ("torchvision", "tqdm", "numpy", "PIL", "safetensors", "tomli_w", "pytest")

SIZES: dict[str, dict[str, Any]] = {
    "gpu": {
        "throughput": ["--models", "resnet18_32", "resnet18_224", "resnet50_224"],
        "tta": [],
        "conv": {"batch": 128, "image_size": 224, "repeats": 5, "warmup": 1},
        "verify_model": "resnet18",
        "pytest": [],
    },
    "smoke": {
        "throughput": [
            *("--models", "lenet_16", "--batch-size", "8", "--plain-batch-size", "8"),
            *("--batches", "2", "--warmup", "1"),
        ],
        "tta": [
            *("--set", "model.name=bn_convnet", "--train-size", "512", "--test-size", "128"),
            *("--batch-size", "64", "--epochs", "1", "--precision", "32", "--threshold", "0"),
        ],
        "conv": {"batch": 2, "image_size": 32, "repeats": 1, "warmup": 0},
        "verify_model": None,
        "pytest": ["--collect-only"],
    },
}


def missing_packages(names: Sequence[str] = REQUIRED) -> list[str]:
    """The packages of ``names`` that cannot be imported here.

    Example:
        >>> missing_packages(["json", "surely_not_a_package_name"])
        ['surely_not_a_package_name']
    """
    return [name for name in names if importlib.util.find_spec(name) is None]


def cuda_test_files(root: Path = REPO_ROOT / "tests") -> list[Path]:
    """The test files that hold ``cuda``-marked tests (collecting only them needs fewer packages).

    Example:
        >>> any(p.name == "test_benchmarks.py" for p in cuda_test_files())
        True
    """
    return sorted(p for p in root.rglob("test_*.py") if "pytest.mark.cuda" in p.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- steps
def step_throughput(device: torch.device, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """(a) plain loop, (b) hand-tuned loop, (c) Trainer: images/s and the ratios."""
    import throughput

    argv = ["--device", str(device), "--scale", "gpu", *sizes["throughput"]]
    result = throughput.main([*argv, "--json", str(out / "throughput.json")])
    table = markdown_table(result["results"], ["model", "loop", "precision", "batch", "img_s", "peak_mib"])
    ratios = markdown_table(result["ratios"], ["model", "c/a", "c/b"])
    return {
        "result": result,
        "markdown": f"{table}\n\n{ratios}\n\nTargets (ResNet-18 at 32): c/b >= 0.97, c/a >= 15.",
    }


def step_time_to_accuracy(
    device: torch.device, sizes: dict[str, Any], out: Path, data_dir: str | None
) -> dict[str, Any]:
    """Fashion-MNIST: time of ``fit()`` to 94% test accuracy with the fast GPU recipe."""
    import time_to_accuracy

    argv = ["--device", str(device), *sizes["tta"], "--json", str(out / "time_to_accuracy.json")]
    if data_dir is not None:
        argv += ["--data-root", data_dir]
    result = time_to_accuracy.main(argv)
    columns = ["epoch", "fit_s", "wall_s", "test_acc", "test_acc_tta", "epoch_end_s"]
    reached = result["reached"]
    line = (
        f"Reached {result['threshold']:.1%} at epoch {reached['epoch']} after {reached['fit_s']:.2f} s "
        "of fit() (goal: <= 10 s)."
        if reached
        else f"Did not reach {result['threshold']:.1%}."
    )
    return {"result": result, "markdown": f"{markdown_table(result['epochs'], columns)}\n\n{line}"}


def step_conv(device: torch.device, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    """Scratch im2col conv vs cuDNN (forward+backward), and ``verify_conv`` against cuDNN."""
    import conv_benchmark

    from finetune_kit.scratch import tf32_disabled, verify_conv

    with tf32_disabled():
        rows = conv_benchmark.measure(device, **sizes["conv"])
    for row in rows:
        row["ratio"] = row["scratch_ms"] / row["torch_ms"]
    total_torch, total_scratch = conv_benchmark.weighted_totals(rows)
    report = verify_conv(device=device, model=sizes["verify_model"])
    conv = sizes["conv"]
    text = (
        f"ResNet-18 convolutions at {conv['image_size']}, batch {conv['batch']}, float32, TF32 off, "
        f"best of {conv['repeats']}:\n\n"
        + markdown_table(rows, ["conv", "k", "s", "hw", "uses", "torch_ms", "scratch_ms", "ratio"])
        + f"\n\nWhole network: {total_torch:.1f} ms torch, {total_scratch:.1f} ms scratch, "
        f"ratio {total_scratch / total_torch:.2f} (im2col+GEMM convolutions are typically 2-4x slower).\n\n"
        f"verify_conv on {device}: {'passed' if report.passed else 'FAILED'}\n\n```\n{report.table()}\n```"
    )
    result = {
        "shapes": rows,
        "total_torch_ms": total_torch,
        "total_scratch_ms": total_scratch,
        "verify_passed": report.passed,
        "verify_table": report.table(),
    }
    return {"result": result, "markdown": text}


def step_cuda_tests(sizes: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``pytest -m cuda`` over the files with cuda tests, in a subprocess; its summary line."""
    files = [str(p) for p in cuda_test_files()]
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", *sizes["pytest"]]
    done = subprocess.run(
        [*command, *files], cwd=REPO_ROOT, capture_output=True, text=True, timeout=max(timeout, 30)
    )
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    result = {"returncode": done.returncode, "files": files, "tail": tail}
    what = "collected" if "--collect-only" in sizes["pytest"] else "passed"
    verdict = what if done.returncode == 0 else f"FAILED (pytest exit status {done.returncode})"
    return {"result": result, "markdown": f"{verdict}\n\n```\n" + "\n".join(tail) + "\n```"}


# --------------------------------------------------------------------------------------- run
def _run_step(name: str, fn: Callable[[], dict[str, Any]], record: dict[str, Any]) -> None:
    """Run one step, timing it; a failure is recorded (with its traceback) and the suite goes on."""
    print(f"\n=== {name}", flush=True)
    started = time.perf_counter()
    try:
        got = fn()
        record[name] = {"status": "ok", **got}
    except Exception as exc:  # a failed step must not cost the figures of the others
        record[name] = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "markdown": f"FAILED: {type(exc).__name__}: {exc}",
        }
        print(record[name]["traceback"], file=sys.stderr)
    record[name]["seconds"] = time.perf_counter() - started
    print(f"=== {name}: {record[name]['status']} in {record[name]['seconds']:.1f} s", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with the four Fashion-MNIST .gz files")
    p.add_argument("--out", type=Path, default=Path("gpu_suite_out"), help="where the JSON and Markdown go")
    p.add_argument("--device", default=None, help="cuda (default), cuda:N; with --smoke also cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device: checks the suite runs")
    p.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    p.add_argument(
        "--budget", type=float, default=450.0, help="seconds; later steps are skipped once it is used"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the suite; write ``gpu_suite.json`` and ``gpu_suite.md``; return the record."""
    args = parse_args(argv)
    default = "cuda" if torch.cuda.is_available() or not args.smoke else "cpu"
    device = torch.device(args.device or default)
    if device.type != "cuda" and not args.smoke:
        raise SystemExit(f"gpu_suite: --device {device} is not a GPU; add --smoke to check the suite on it.")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_suite: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}): "
            "nothing was run. Run it on a machine with a GPU, or use --smoke to check it on the CPU.",
            file=sys.stderr,
        )
        return {"status": "skipped", "reason": "no CUDA GPU"}
    missing = missing_packages()
    if missing:
        raise SystemExit(
            f"gpu_suite: missing Python packages: {', '.join(missing)}. Install them (or carry their "
            "wheels and put them on PYTHONPATH) and run again."
        )
    started = time.perf_counter()
    sizes = SIZES["smoke" if args.smoke else "gpu"]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = environment(device)
    print(describe(env), flush=True)
    record: dict[str, Any] = {"suite": "gpu_suite", "smoke": args.smoke, "environment": env}
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "throughput": lambda: step_throughput(device, sizes, out),
        "time_to_94": lambda: step_time_to_accuracy(device, sizes, out, args.data_dir),
        "conv": lambda: step_conv(device, sizes, out),
        "cuda_tests": lambda: step_cuda_tests(sizes, args.budget - (time.perf_counter() - started)),
    }
    for name, fn in steps.items():
        if name in args.skip:
            continue
        if time.perf_counter() - started > args.budget:  # keep the suite inside its time slot
            record[name] = {"status": "skipped", "seconds": 0.0, "markdown": "skipped: --budget used up"}
            continue
        _run_step(name, fn, record)
    record["seconds"] = time.perf_counter() - started
    write_json(out / "gpu_suite.json", record)
    (out / "gpu_suite.md").write_text(_markdown(record), encoding="utf-8")
    print(f"\nWrote {out / 'gpu_suite.json'} and {out / 'gpu_suite.md'} ({record['seconds']:.0f} s).")
    return record


def _markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# GPU suite{' (smoke run, tiny sizes)' if record['smoke'] else ''}",
        "",
        describe(record["environment"]).replace("# ", ""),  # plain lines here, not headings
    ]
    lines += ["", f"Total: {record['seconds']:.0f} s.", ""]
    lines += ["| step | status | seconds |", "| --- | --- | ---: |"]
    steps = [k for k in STEPS if k in record]
    lines += [f"| {k} | {record[k]['status']} | {record[k]['seconds']:.1f} |" for k in steps]
    for k in steps:
        lines += ["", f"## {k}", "", record[k]["markdown"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
