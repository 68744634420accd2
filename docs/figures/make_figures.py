"""Regenerate every figure of the documentation from real runs of the library.

    python docs/figures/make_figures.py                 # everything (about 30 min on 2 CPU cores)
    python docs/figures/make_figures.py --only freezing transfer scratch
    python docs/figures/make_figures.py --smoke --out /tmp/figs   # tiny fake data, seconds

Steps (``--only`` takes their names):

============== ==============================================================================
quickstart     train ``examples/configs/quickstart.toml`` as shipped (plots on): learning
               curves, confusion matrix, per-class accuracy, worst test images with Grad-CAM
               (``docs/_static/plots_and_logs/``), and ``data/quickstart.json``
lr_find        the learning-rate range test of the quickstart config (``lr_find.png``)
freezing       what trains, stage by stage, under each freezing strategy (ResNet-18),
               from the library's trainable summary (``docs/_static/figures/freezing.png``)
transfer       the transfer experiment's measured test accuracies, from
               ``data/transfer_experiment.json`` (``transfer.png``)
loaders        the loader throughput measured in the data guide, from
               ``data/loader_throughput.json`` (``loaders.png``)
cpu_settings   the CPU step times of the performance guide, from ``data/cpu_settings.json``
               (``cpu_settings.png``)
scratch        the scratch convolution's errors against PyTorch (``finetune_kit.scratch``
               verify report, float32 and float64, ResNet-18 converted), ``scratch_errors.png``
               and ``data/scratch_verify.json``
tutorial_runs  measure the tutorials' recipes on Fashion-MNIST (``run_tutorial.py``, the
               commands in :data:`TUTORIAL_RUNS`): ``data/tutorial_<recipe>.json``
tutorials      one figure per measured tutorial (curves and per-class accuracy), from those files
fashion_tutorial  run ``examples/fashion_mnist_convnet.py`` (the Fashion-MNIST tutorial, one
               thread; about 5 min) and keep its curves and confusion matrix, and
               ``data/tutorial_fashion_mnist_convnet.json``
tuning         the tuning tutorial's study without pruning (``examples/tune_transfer.py``),
               its optimisation history (``docs/tutorials/tuning_history.png``)
============== ==============================================================================

The figures are drawn at 100 dpi or less so that each PNG stays small.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import finetune_kit as fk
from finetune_kit.analysis import plot_history, plot_per_class

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
ROOT = DOCS.parent
DATA = HERE / "data"

TUTORIAL_RUNS: dict[str, list[str]] = {
    "cifar10_lenet": ["--epochs", "2"],
    "mnist_convnet": ["--train-images", "10000", "--epochs", "10", "--threads", "1"],
    "cifar10_resnet18_frozen_adamw": [
        *("--train-images", "5000", "--test-images", "1000", "--epochs", "2", "--threads", "1"),
    ],
    "cifar10_resnet18_imagenet": [
        *("--train-images", "1000", "--test-images", "500", "--epochs", "1", "--threads", "2"),
    ],
    "cifar10_resnet50": ["--train-images", "500", "--test-images", "200", "--epochs", "1", "--threads", "2"],
}
"""The tutorial measurements: the arguments of ``run_tutorial.py`` per recipe (each < 5 min)."""

STRATEGIES: list[tuple[str, dict]] = [
    ("full", {}),
    ("linear_probe", {}),
    ("freeze_first", {"n": 3}),
    ("gradual_unfreeze", {}),
    ("discriminative_lr", {}),
    ("bitfit", {}),
    ("lora", {"rank": 4}),
]


class Out:
    """Where the figures go: the documentation's folders, or one folder for ``--smoke``/``--out``."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def path(self, default: Path) -> Path:
        path = default if self.root is None else self.root / default.name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


SMOKE_CONFIG = """
[data]
dataset = "fake"
options = {train_size = 96, test_size = 32, in_channels = 1, image_size = 28}

[model]
name = "convnet"

[train]
epochs = 2
"""


def _quickstart_file(smoke: bool, folder: Path) -> Path:
    if not smoke:
        return ROOT / "examples" / "configs" / "quickstart.toml"
    path = folder / "smoke.toml"
    path.write_text(SMOKE_CONFIG)
    return path


def quickstart(out: Out, smoke: bool) -> list[Path]:
    """Run ``finetune-kit train --config examples/configs/quickstart.toml`` (what ``make demo``
    runs) and keep the figures it draws, its console output and its result."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "quickstart"
        command = [
            sys.executable,
            "-m",
            "finetune_kit",
            "train",
            "--config",
            str(_quickstart_file(smoke, Path(tmp))),
        ]
        command += ["--output-dir", str(run_dir), "--set", "train.plots=true"]
        start = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        written = []
        for name in ("curves", "confusion", "per_class", "worst"):
            target = out.path(DOCS / "_static" / "plots_and_logs" / f"{name}.png")
            shutil.copyfile(run_dir / "plots" / f"{name}.png", target)
            written.append(target)
        report = json.loads((run_dir / "report.json").read_text())
        result = {
            "command": "finetune-kit train --config examples/configs/quickstart.toml",
            "test_accuracy": report["accuracy"],
            "wall_s_command": round(wall, 1),
            "history": list(csv.DictReader((run_dir / "metrics.csv").open())),
            "console": done.stderr.splitlines(),
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        }
        target = out.path(DATA / "quickstart.json")
        target.write_text(json.dumps(result, indent=1) + "\n")
        return [*written, target]


def lr_find(out: Out, smoke: bool) -> list[Path]:
    """``finetune-kit lr-find`` on the quickstart config: its curve, and what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "finetune_kit",
            "lr-find",
            "--config",
            str(_quickstart_file(smoke, Path(tmp))),
        ]
        command += ["--output-dir", str(Path(tmp) / "lr")] + (["--num-steps", "20"] if smoke else [])
        start = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        target = out.path(DOCS / "_static" / "plots_and_logs" / "lr_find.png")
        shutil.copyfile(Path(tmp) / "lr" / "lr_find.png", target)
        record = out.path(DATA / "lr_find.json")
        record.write_text(
            json.dumps(
                {
                    "command": "finetune-kit lr-find --config examples/configs/quickstart.toml",
                    "stdout": done.stdout.splitlines(),
                    "wall_s": round(wall, 1),
                    "date": time.strftime("%Y-%m-%d"),
                },
                indent=1,
            )
            + "\n"
        )
        print(done.stdout)
        return [target, record]


def freezing(out: Out, smoke: bool) -> list[Path]:
    """A grid: stages of ResNet-18 (columns) x strategies (rows), the trainable share of each."""
    plt = _plt()
    model_name = "lenet" if smoke else "resnet18"
    summaries = []
    for name, options in STRATEGIES:
        model = fk.create_model(model_name, num_classes=10, in_channels=3, seed=0)
        plan = fk.apply_strategy(model, name, **options)
        summaries.append((f"{name}({', '.join(f'{k}={v}' for k, v in options.items())})", plan.summary()))
    stages = [row.stage for row in summaries[0][1].rows]
    share = torch.tensor(
        [[row.trainable / max(row.params, 1) for row in summary.rows] for _, summary in summaries]
    )
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=90, layout="constrained")
    ax.imshow(share, cmap="Greens", vmin=0, vmax=1.3, aspect="auto")
    for i, (_, summary) in enumerate(summaries):
        for j, row in enumerate(summary.rows):
            text = f"{row.trainable:,}" if row.trainable else "frozen"
            if row.trainable and row.lr_text not in ("-", "1"):
                text += f"\nlr x{row.lr_text}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(stages)), stages)
    labels = [f"{label}\n{s.trainable_params:,} of {s.total_params:,}" for label, s in summaries]
    ax.set_yticks(range(len(summaries)), labels, fontsize=7)
    ax.set_title(f"What trains: {model_name}, trainable parameters per stage", fontsize=9)
    target = out.path(DOCS / "_static" / "figures" / "freezing.png")
    fig.savefig(target)
    plt.close(fig)
    return [target]


def transfer(out: Out, smoke: bool) -> list[Path]:
    """Bar chart of the transfer experiment's measured accuracies (data file beside this script)."""
    plt = _plt()
    data = json.loads((DATA / "transfer_experiment.json").read_text())
    parts = data["experiments"]
    fig, axes = plt.subplots(1, len(parts), figsize=(9, 3.4), dpi=90, layout="constrained")
    for ax, part in zip(axes, parts, strict=True):
        scratch = next(row["accuracy"] for row in part["rows"] if row["run"] == "scratch")
        rows = [row for row in part["rows"] if row["run"] != "scratch"]
        gains = [row["accuracy"] - scratch for row in rows]
        ax.barh(range(len(rows)), gains, color=["#2a7" if g > 0 else "#c55" for g in gains])
        ax.axvline(0, color="k", lw=0.8)
        low = min(min(gains), 0)
        for k, (row, gain) in enumerate(zip(rows, gains, strict=True)):
            ax.text(max(gain, 0) + 0.3, k, f"{row['accuracy']:.1f}% ({gain:+.1f})", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), [row["run"] for row in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(low * 1.05 - 0.5, max(max(gains), 0) + (8 if low > -20 else 30))
        ax.set_xlabel(f"test accuracy minus scratch ({scratch:.1f}%), points", fontsize=8)
        ax.set_title(part["title"], fontsize=8)
        ax.tick_params(labelsize=7)
    target = out.path(DOCS / "_static" / "figures" / "transfer.png")
    fig.savefig(target)
    plt.close(fig)
    return [target]


def loaders(out: Out, smoke: bool) -> list[Path]:
    """Bar chart of the loader throughput the data guide measured (data file beside this script)."""
    plt = _plt()
    data = json.loads((DATA / "loader_throughput.json").read_text())
    groups = list(dict.fromkeys(row["data"] for row in data["rows"]))
    kinds = list(dict.fromkeys(row["loader"] for row in data["rows"]))
    value = {(row["data"], row["loader"]): row["img_s"] for row in data["rows"]}
    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=90, layout="constrained")
    height = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        ys = [g + k * height for g in range(len(groups))]
        xs = [value[(group, kind)] for group in groups]
        ax.barh(ys, xs, height=height, label=kind)
        for y, x in zip(ys, xs, strict=True):
            ax.text(x * 1.05, y, f"{x:,}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(1e3, 3e5)
    ax.set_yticks([g + height for g in range(len(groups))], groups, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(data["unit"] + ", log scale", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    target = out.path(DOCS / "_static" / "figures" / "loaders.png")
    fig.savefig(target)
    plt.close(fig)
    return [target]


def cpu_settings(out: Out, smoke: bool) -> list[Path]:
    """Speed-up of each CPU setting over NCHW float32, per model (data file beside this script)."""
    plt = _plt()
    data = json.loads((DATA / "cpu_settings.json").read_text())
    settings, rows = data["settings"], data["rows"]
    fig, ax = plt.subplots(figsize=(9, 3.0), dpi=90, layout="constrained")
    height = 0.8 / len(settings)
    for k, setting in enumerate(settings):
        ys = [r + k * height for r in range(len(rows))]
        speedups = [row["ms"][0] / row["ms"][k] for row in rows]
        ax.barh(ys, speedups, height=height, label=setting)
        for y, row, speedup in zip(ys, rows, speedups, strict=True):
            ax.text(speedup + 0.03, y, f"{row['ms'][k]:g} ms", va="center", fontsize=6.5)
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set_yticks([r + 1.5 * height for r in range(len(rows))], [row["model"] for row in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 3.4)
    ax.set_xlabel("speed-up of a training step over NCHW float32 (CPU time, batch 256, 1 thread)", fontsize=8)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    target = out.path(DOCS / "_static" / "figures" / "cpu_settings.png")
    fig.savefig(target)
    plt.close(fig)
    return [target]


def scratch(out: Out, smoke: bool) -> list[Path]:
    """The verify report of the scratch convolution, float32 and float64, drawn as errors."""
    from finetune_kit.scratch import ConvConfig, verify_conv

    plt = _plt()
    configs = [ConvConfig(batch=1, in_channels=2, out_channels=2, size=(5, 5))] if smoke else None
    reports = {}
    start = time.perf_counter()
    for dtype in (torch.float32, torch.float64):
        model = None if smoke or dtype == torch.float64 else "resnet18"
        reports[str(dtype).removeprefix("torch.")] = verify_conv(configs, dtype=dtype, model=model)
    wall = time.perf_counter() - start
    floor = 1e-18  # exact zeros (float64 often is exact) are drawn on this line
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=80, layout="constrained")
    for ax, (dtype, report) in zip(axes, reports.items(), strict=True):
        kinds: dict[str, list] = {}
        for row in report.rows:
            kind = "whole model" if row.case in ("resnet18", "lenet", "convnet") else row.quantity
            kinds.setdefault(kind, []).append(row)
        for kind, rows in kinds.items():
            ax.scatter(
                [max(r.torch_rel, floor) for r in rows],
                [max(r.max_rel, floor) for r in rows],
                s=14,
                label=kind,
            )
        tol = max(r.tolerance for r in report.rows if r.case not in ("resnet18",))
        values = [v for r in report.rows for v in (r.max_rel, r.torch_rel) if v > 0]
        low = min(values) / 10 if all(r.max_rel > 0 and r.torch_rel > 0 for r in report.rows) else floor / 3
        high = max(*values, tol) * 10
        ax.plot([low, high], [low, high], color="k", lw=0.6, ls=":", label="as accurate as PyTorch")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.axhline(tol, color="#c55", lw=0.8, ls="--", label=f"layer tolerance {tol:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        passed = sum(r.passed for r in report.rows)
        ax.set_title(f"{dtype}: {passed} of {len(report.rows)} checks pass ({report.device})", fontsize=9)
        ax.set_xlabel("PyTorch's own relative error", fontsize=8)
        ax.set_ylabel("scratch relative error", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    target = out.path(DOCS / "_static" / "figures" / "scratch_errors.png")
    fig.savefig(target)
    plt.close(fig)
    record = {
        dtype: {
            "passed": report.passed,
            "checks": len(report.rows),
            "max_rel": max(r.max_rel for r in report.rows),
            "max_torch_rel": max(r.torch_rel for r in report.rows),
            "device": report.device,
        }
        for dtype, report in reports.items()
    }
    record["wall_s"] = round(wall, 1)
    record["command"] = "python docs/figures/make_figures.py --only scratch"
    data = out.path(DATA / "scratch_verify.json")
    data.write_text(json.dumps(record, indent=1) + "\n")
    return [target, data]


def tutorial_runs(out: Out, smoke: bool) -> list[Path]:
    """Measure each tutorial's recipe (``run_tutorial.py``); slow: about 20 min in all."""
    written = []
    for recipe, args in TUTORIAL_RUNS.items():
        if smoke:
            args = ["--train-images", "60", "--test-images", "20", "--epochs", "1"]
        command = [sys.executable, str(HERE / "run_tutorial.py"), recipe, *args]
        if out.root is not None:
            command += ["--data-dir", str(out.root), "--output-dir", str(out.root / "runs" / recipe)]
        subprocess.run(command, check=True)
        written.append(out.path(DATA / f"tutorial_{recipe}.json"))
        if smoke:
            break  # one recipe shows that the path works
    return written


def tutorials(out: Out, smoke: bool) -> list[Path]:
    """One figure per measured tutorial: its learning curves and its per-class accuracy."""
    source = out.root if smoke else DATA
    written = []
    for path in sorted(source.glob("tutorial_*.json")):
        result = json.loads(path.read_text())
        if "confusion" not in result:  # the Fashion-MNIST tutorial keeps its own run's figures
            continue
        name = path.stem.removeprefix("tutorial_")
        curves = out.path(DOCS / "_static" / "figures" / f"{name}_curves.png")
        plot_history(result["history"], curves)
        written.append(curves)
        if result["test_accuracy"] > 0.2:  # a per-class chart of a chance-level run says nothing
            per_class = out.path(DOCS / "_static" / "figures" / f"{name}_per_class.png")
            plot_per_class(result["confusion"], result["class_names"], per_class)
            written.append(per_class)
    return written


def fashion_tutorial(out: Out, smoke: bool) -> list[Path]:
    """Run the Fashion-MNIST tutorial's script as the page says, keep its figures and results."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "fmnist"
        command = [
            sys.executable,
            str(ROOT / "examples" / "fashion_mnist_convnet.py"),
            "--output-dir",
            str(run_dir),
        ]
        if smoke:
            command += ["--smoke", "--fake-data"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread, as the page says
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - start
        written = []
        for name in ("curves", "confusion"):
            target = out.path(DOCS / "_static" / "figures" / f"fashion_mnist_convnet_{name}.png")
            shutil.copyfile(run_dir / "plots" / f"{name}.png", target)
            written.append(target)
        report = json.loads((run_dir / "report.json").read_text())
        rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
        result = {
            "command": "OMP_NUM_THREADS=1 python examples/fashion_mnist_convnet.py",
            "wall_s_process": round(wall, 1),
            "test_accuracy": report["accuracy"],
            "history": rows,
            "date": time.strftime("%Y-%m-%d"),
        }
        target = out.path(
            DATA / "tutorial_fashion_mnist_convnet.json" if not smoke else DATA / "fashion.json"
        )
        target.write_text(json.dumps(result, indent=1) + "\n")
        return [*written, target]


def tuning(out: Out, smoke: bool) -> list[Path]:
    """Rerun the tuning tutorial's study without pruning and copy its optimisation history."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / "examples" / "tune_transfer.py"), "--out", tmp]
        command += ["--smoke"] if smoke else ["--threads", "1", "--pruners", "none"]
        subprocess.run(command, check=True)
        found = sorted(
            Path(tmp).glob("**/optimization_history.png"), key=lambda p: "no_pruning" not in str(p)
        )
        target = out.path(DOCS / "tutorials" / "tuning_history.png")
        shutil.copyfile(found[0], target)
        return [target]


STEPS: dict[str, Callable[[Out, bool], list[Path]]] = {
    "quickstart": quickstart,
    "lr_find": lr_find,
    "freezing": freezing,
    "transfer": transfer,
    "loaders": loaders,
    "cpu_settings": cpu_settings,
    "scratch": scratch,
    "tutorial_runs": tutorial_runs,
    "tutorials": tutorials,
    "fashion_tutorial": fashion_tutorial,
    "tuning": tuning,
}


MAX_BYTES = 140_000


def shrink(path: Path) -> None:
    """Re-save a PNG over :data:`MAX_BYTES` with a 256-colour palette (the library draws some
    figures, e.g. the worst-images grid, at a resolution meant for a run directory)."""
    if path.suffix != ".png" or path.stat().st_size <= MAX_BYTES:
        return
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(STEPS), help="run only these steps")
    parser.add_argument("--smoke", action="store_true", help="tiny fake data; needs --out")
    parser.add_argument("--out", type=Path, help="write every figure into this folder instead of docs/")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    if args.smoke and args.out is None:
        parser.error("--smoke needs --out (a smoke run must not replace the documentation's figures)")
    torch.set_num_threads(args.threads)
    out = Out(args.out)
    written = []
    for name in args.only or list(STEPS):
        start = time.perf_counter()
        paths = STEPS[name](out, args.smoke)
        for path in paths:
            shrink(path)
        written += paths
        print(f"{name}: {len(paths)} files in {time.perf_counter() - start:.0f} s")
    return written


if __name__ == "__main__":
    main()
