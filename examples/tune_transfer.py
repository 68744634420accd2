"""Tune the transfer experiment: search the fine-tuning strategy and learning rate with fk.tune.

The split of examples/transfer_experiment.py, on real Fashion-MNIST: a ConvNet pretrained on
classes 0-4 (T-shirt, trouser, pullover, dress, coat) learns classes 5-9 (sandal, shirt,
sneaker, bag, ankle boot) from 100 labelled images per class; the test set is the 5,000 test
images of classes 5-9. The script

1. pretrains the ConvNet on classes 0-4 (or reuses ``--pretrained FILE``) and saves its body
   (everything but the head) as a safetensors file, which the configs load as ``model.weights``;
2. runs a study over the strategy (and its options) and the learning rate, with pruning, and
   the same study without pruning (``--pruners``), holding out 100 of the 500 images for
   validation;
3. retrains the configs with three seeds each (each seed draws its own 500 images) and tests
   them: the transfer experiment's recipe with its default strategy (``full``, lr 1e-3), its
   best hand-picked strategy (``lora``, rank 4, lr 1e-2), and the best config of each study.

Run again, the script continues its studies (finished trials are kept) and reuses the
retraining runs it has; ``--eval-val-fraction 0`` retrains the configs on all 500 images.

The test set is used only in step 3. Usage::

    python examples/tune_transfer.py --threads 1       # the studies of docs/tutorials/tuning.md
    python examples/tune_transfer.py --threads 1 --pruners successive_halving none median
    python examples/tune_transfer.py --threads 1 --eval-val-fraction 0   # retrain on all 500
    python examples/tune_transfer.py --smoke           # seconds; used by the tests

Results (a table) are printed and written to ``--out`` as ``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transfer_experiment import SOURCE, TARGET, pick

import finetune_kit as fk
from finetune_kit.data import DatasetParts, ImageTensorDataset

SPACE = {
    "finetune.strategy": [
        "full", "linear_probe", "freeze_first", "gradual_unfreeze", "discriminative_lr", "bitfit", "lora",
    ],
    "optim.lr": {"low": 1e-4, "high": 3e-2, "log": True},
    "finetune.options.n": {"choices": [1, 2, 3], "when": {"finetune.strategy": "freeze_first"}},
    "finetune.options.every": {"choices": [1, 2, 3], "when": {"finetune.strategy": "gradual_unfreeze"}},
    "finetune.options.rank": {"choices": [2, 4, 8], "when": {"finetune.strategy": "lora"}},
}  # fmt: skip
HAND_PICKED = {  # the transfer experiment's recipe: its default strategy, and its best one
    "default recipe (full, lr 1e-3)": {},
    "hand-picked (lora rank 4, lr 1e-2)": {
        "finetune.strategy": "lora", "finetune.options.rank": 4, "finetune.options.alpha": 8,
        "optim.lr": 1e-2,
    },
}  # fmt: skip


@functools.cache
def fashion(root: str | None) -> tuple[torch.Tensor, ...]:
    """Fashion-MNIST's training and test images and labels, read once per process."""
    data = fk.create_datasets("fashion_mnist", root=root, val_fraction=0, download=False)
    return data.train.images, data.train.targets, data.test.images, data.test.targets


def register_datasets(root: str | None) -> None:
    """``fashion_source`` (classes 0-4) and ``fashion_target`` (classes 5-9, ``per_class`` images)."""

    @fk.register_dataset("fashion_source", override=True)
    def fashion_source(*, per_class: int | None = None, test_per_class: int | None = None) -> DatasetParts:
        """Classes 0-4 of Fashion-MNIST (labels 0..4), for pretraining."""
        x, y, tx, ty = fashion(root)
        return _parts(
            pick(x, y, SOURCE, per_class, seed=1234), pick(tx, ty, SOURCE, test_per_class, seed=1234), 0
        )

    @fk.register_dataset("fashion_target", override=True)
    def fashion_target(
        *, draw: int = 0, per_class: int = 100, test_per_class: int | None = None
    ) -> DatasetParts:
        """Classes 5-9 of Fashion-MNIST (labels 0..4): ``per_class`` images drawn with seed ``draw``."""
        x, y, tx, ty = fashion(root)
        return _parts(
            pick(x, y, TARGET, per_class, seed=draw), pick(tx, ty, TARGET, test_per_class, seed=4321), 5
        )


def _parts(train: tuple, test: tuple, first: int) -> DatasetParts:
    from finetune_kit.data.builtin import FASHION_MNIST_CLASSES

    names = FASHION_MNIST_CLASSES[first : first + 5]
    return DatasetParts(
        train=ImageTensorDataset(*train, names, source="Fashion-MNIST"),
        test=ImageTensorDataset(*test, names, source="Fashion-MNIST"),
        class_names=names,
        default_preset="fashion",
        source="Fashion-MNIST",
    )


def pretrain(args: argparse.Namespace, path: Path) -> float:
    """Pretrain the ConvNet on classes 0-4 (the transfer experiment's recipe); save its body."""
    data = fk.create_datasets(
        "fashion_source",
        val_fraction=0,
        per_class=args.pretrain_per_class,
        test_per_class=args.test_per_class,
    )
    model = fk.create_model("convnet", num_classes=5, in_channels=1, seed=0)
    trainer = fk.Trainer(
        model, data, epochs=args.pretrain_epochs, batch_size=128, optimizer="adamw", lr=1e-3,
        weight_decay=0.01, scheduler="cosine", seed=0, progress=False, device="cpu",
        output_dir=str(path.parent / "pretrain"), overwrite=True, max_steps=args.max_steps,
    )  # fmt: skip
    trainer.fit()
    accuracy = trainer.evaluate("test")["accuracy"]
    head = fk.model_info(model).head
    body = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    save_file(body, str(path))
    print(f"pretrained on {len(data.train)} images of classes 0-4: source test accuracy {accuracy:.4f}")
    return accuracy


def base_config(args: argparse.Namespace, weights: Path, output_dir: Path) -> fk.RunConfig:
    """The transfer experiment's recipe as a config, with 100 of the 500 images held out."""
    return fk.RunConfig.from_dict(
        {
            "data": {
                "dataset": "fashion_target", "val_fraction": args.val_fraction,
                "options": {"draw": 0, "per_class": args.per_class}
                | ({"test_per_class": args.test_per_class} if args.test_per_class else {}),
            },
            "loader": {"batch_size": args.batch_size},
            "model": {"name": "convnet", "weights": str(weights)},
            "optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "scheduler": "cosine"},
            "train": {
                "epochs": args.epochs, "seed": 0, "device": "cpu", "progress": False,
                "output_dir": str(output_dir), "max_steps": args.max_steps,
            },
        }
    )  # fmt: skip


def study(base: fk.RunConfig, args: argparse.Namespace, pruner: str, folder: Path) -> dict[str, Any]:
    """Run (or continue) one study; its best trial, its cost in epochs, wall and CPU time.

    The times add up over the runs of the script that trained its trials (``timing.json``).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fk.tune(base, SPACE, n_trials=args.trials, pruner=pruner, output_dir=folder)
    timing_file = folder / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall": 0.0, "cpu": 0.0}
    timing = {
        "wall": timing["wall"] + time.perf_counter() - wall,
        "cpu": timing["cpu"] + time.process_time() - cpu,
    }
    timing_file.write_text(json.dumps(timing) + "\n")
    rows = result.leaderboard
    return {
        "pruner": pruner,
        "trials": len(rows),
        "pruned": sum(r.state == "pruned" for r in rows),
        "epochs_trained": sum(r.epochs or 0 for r in rows),
        "wall_seconds": round(timing["wall"], 1),
        "cpu_seconds": round(timing["cpu"], 1),
        "best_trial": result.best_trial.number,
        "best_val_accuracy": result.best_value,
        "best_params": result.best_params,
        "best_config": result.best_config,
    }


def evaluate(name: str, config: fk.RunConfig, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Train ``config`` with each seed (each seed draws its own images) and test it.

    A seed whose run directory holds the result of the same config is not trained again.
    """
    accuracies, seconds = [], []
    for seed in range(args.seeds):
        run_dir = folder / f"{_slug(name)}-seed{seed}"
        run = dataclasses.replace(
            config,
            data=dataclasses.replace(
                config.data, options=dict(config.data.options, draw=seed), val_fraction=args.eval_val_fraction
            ),
            train=dataclasses.replace(config.train, seed=seed, output_dir=str(run_dir), overwrite=True),
        )
        saved = run_dir / "result.json"
        if saved.is_file() and json.loads(saved.read_text())["config"] == run.to_dict():
            result = json.loads(saved.read_text())
        else:
            start = time.perf_counter()
            trainer = fk.build_trainer(run)
            trainer.fit()
            result = {
                "accuracy": trainer.evaluate("test")["accuracy"],
                "seconds": time.perf_counter() - start,
            }
            saved.write_text(json.dumps(result | {"config": run.to_dict()}) + "\n")
        accuracies.append(result["accuracy"])
        seconds.append(round(result["seconds"], 1))
        print(f"  {name} seed {seed}: test accuracy {accuracies[-1]:.4f} ({seconds[-1]} s)", flush=True)
    return {"run": name, "accuracies": accuracies, "mean": statistics.mean(accuracies), "seconds": seconds}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.split(" (")[0]).strip("-")


def table(rows: list[dict[str, Any]]) -> str:
    """Mean test accuracy per config (and per seed), against the default recipe."""
    base = rows[0]["mean"]
    lines = [
        "| config | test accuracy (mean of seeds) | per seed | vs default |",
        "| --- | ---: | --- | ---: |",
    ]
    for row in rows:
        per_seed = ", ".join(f"{100 * a:.2f}" for a in row["accuracies"])
        gain = "" if row is rows[0] else f"{100 * (row['mean'] - base):+.2f} pp"
        lines.append(f"| {row['run']} | {100 * row['mean']:.2f}% | {per_seed} | {gain} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24, help="trials of each study (default 24)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the final comparison (default 3)")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (default 10)")
    p.add_argument("--per-class", type=int, default=100, help="labelled target images per class")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held out for validation (default 0.2)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--pretrain-per-class", type=int, default=None, help="source images per class (all)")
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--test-per-class", type=int, default=None, help="test images per class (all 1,000)")
    p.add_argument("--pretrained", type=Path, help="reuse this pretrained body (safetensors)")
    p.add_argument(
        "--pruners",
        nargs="+",
        default=["successive_halving", "none"],
        help="one study per pruner (default: successive_halving, and none for comparison)",
    )
    p.add_argument(
        "--eval-val-fraction",
        type=float,
        default=None,
        help="val_fraction of the final comparison (default: the study's; 0 retrains on all images)",
    )
    p.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--out", type=Path, default=Path("runs/tune_transfer"), help="where everything goes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--smoke", action="store_true", help="a few steps on tiny subsets")
    args = p.parse_args(argv)
    args.max_steps = None
    if args.eval_val_fraction is None:
        args.eval_val_fraction = args.val_fraction
    if args.smoke:
        args.trials, args.seeds, args.epochs, args.per_class, args.pretrain_per_class = 2, 1, 2, 10, 20
        args.pretrain_epochs, args.test_per_class, args.max_steps, args.batch_size = 1, 10, 4, 10
    return args


STUDY_DIRS = {"successive_halving": "study", "none": "study_no_pruning"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # The saved body has no head (a new one is trained): loading it reports the head missing.
    warnings.filterwarnings("ignore", message=r"(?s)create_model\('convnet'\): Loaded .* missing \(2\): fc2")
    register_datasets(args.root)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.pretrained or args.out / "pretrained_body.safetensors"
    source_accuracy = None if args.pretrained else pretrain(args, weights)
    base = base_config(args, weights, args.out / "study")
    studies = [study(base, args, p, args.out / STUDY_DIRS.get(p, f"study_{p}")) for p in args.pruners]
    configs = {name: base if not values else _with(base, values) for name, values in HAND_PICKED.items()}
    for s in studies:
        configs[f"tuned, pruner {s['pruner']} ({_describe(s['best_params'])})"] = s["best_config"]
    print(f"\nRetraining with each seed (val_fraction {args.eval_val_fraction}) and testing:")
    same = args.eval_val_fraction == args.val_fraction
    folder = args.out / ("eval" if same else f"eval_val_fraction_{args.eval_val_fraction:g}")
    rows: list[dict[str, Any]] = []
    for name, config in configs.items():
        twin = next((r for r in rows if _same(configs[r["run"]], config)), None)  # reuse its results
        rows.append(dict(twin, run=name) if twin else evaluate(name, config, args, folder))
    text = table(rows)
    print(f"\n{text}")
    for s in studies:
        minutes = f"{s['wall_seconds'] / 60:.1f} min wall, {s['cpu_seconds'] / 60:.1f} min CPU"
        print(
            f"study with pruner {s['pruner']}: {s['trials']} trials ({s['pruned']} pruned), "
            f"{s['epochs_trained']} epochs, {minutes}; best val accuracy {s['best_val_accuracy']:.4f}"
        )
    given = sys.argv[1:] if argv is None else argv
    report = {
        "command": " ".join(["python", "examples/tune_transfer.py", *given]),
        "source_accuracy": source_accuracy,
        "studies": [{k: v for k, v in s.items() if k != "best_config"} for s in studies],
        "results": rows,
        "table": text,
    }
    name = "results.json" if same else f"results_val_fraction_{args.eval_val_fraction:g}.json"
    (args.out / name).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return report


def _same(a: fk.RunConfig, b: fk.RunConfig) -> bool:
    """The same training config (the run directory aside)."""
    first, second = a.to_dict(), b.to_dict()
    first["train"].pop("output_dir")
    second["train"].pop("output_dir")
    return first == second


def _with(base: fk.RunConfig, values: dict[str, Any]) -> fk.RunConfig:
    return fk.SearchSpace.from_dict({k: [v] for k, v in values.items()}).apply(base, values)


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.rsplit('.', 1)[-1]} {v:.3g}" if isinstance(v, float) else f"{v}" for k, v in params.items()
    )


if __name__ == "__main__":
    main()
