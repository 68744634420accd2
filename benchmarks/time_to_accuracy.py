"""Time to accuracy on real Fashion-MNIST: wall time of ``fit()`` until the test set is solved.

Trains the fast recipe (``examples/configs/fashion_mnist_fast.toml``: ResNet-9, batch 500,
one-cycle, label smoothing, EMA of the weights, bf16 on CUDA) with ``finetune_kit.Trainer`` and,
after every epoch, evaluates the test set with flip test-time augmentation (the mean of the
softmax of the image and of its mirror image, on the EMA weights). It reports, per epoch:

* ``fit_s`` -- wall time since ``fit()`` was called, **excluding** these test evaluations
  (set-up, data to the device, cuDNN autotuning, training, the end-of-epoch checkpoint and
  logs of earlier epochs are all included: everything ``fit()`` itself does);
* ``wall_s`` -- the same **including** the test evaluations;
* test accuracy with and without flip TTA.

The time to accuracy is the ``fit_s`` of the first epoch whose flip-TTA test accuracy reaches
``--threshold``; the best accuracy within ``--budget`` seconds is reported too. The schedule
(one-cycle) is fixed by the number of epochs, so to get the best accuracy within a budget, run
with ``--epochs`` chosen so that the whole run fits it.

Run::

    python benchmarks/time_to_accuracy.py --device cuda --json tta_gpu.json     # the H100 run
    python benchmarks/time_to_accuracy.py --device cuda --epochs 40 --budget 60
    python benchmarks/time_to_accuracy.py --device cpu --threads 1     # a subset, ~2 minutes

``--scale cpu`` (the default on a CPU) trains on 1,000 training images for one epoch at batch
128 in fp32 and tests on 500, so the pipeline is visible without a GPU; since the EMA of so few
steps is still mostly the initial weights, it also evaluates the raw weights (``--eval-raw``,
column ``raw_acc_tta``). ``--train-size``, ``--test-size``, ``--epochs``, ``--batch-size``,
``--precision``, ``--eval-raw`` and ``--set key=value`` override any of it. The data are the
real Fashion-MNIST files (``--data-root`` or the standard places, e.g.
``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from common import (
    REPO_ROOT,
    autocast_to,
    describe,
    environment,
    markdown_table,
    synchronize,
    torch_threads,
    write_json,
)
from torch import nn

import finetune_kit as fk
from finetune_kit.training.from_config import build_datasets, build_model

__all__ = ["DEFAULT_CONFIG", "SCALES", "TimeToAccuracy", "flip_tta_evaluate", "main", "subset_bundle"]

DEFAULT_CONFIG = REPO_ROOT / "examples" / "configs" / "fashion_mnist_fast.toml"

SCALES: dict[str, dict[str, Any]] = {
    "gpu": {
        "train_size": None,
        "test_size": None,
        "epochs": None,
        "batch_size": None,
        "precision": None,
        "eval_raw": False,
    },
    "cpu": {
        "train_size": 1000,
        "test_size": 500,
        "epochs": 1,
        "batch_size": 128,
        "precision": "32",
        "eval_raw": True,
    },
}


@torch.no_grad()
def flip_tta_evaluate(
    model: nn.Module, loader: Any, *, device: torch.device, precision: str = "32", flip: bool = True
) -> dict[str, float]:
    """Accuracy with and without flip test-time augmentation, over one pass of ``loader``.

    With ``flip``, the prediction is the mean of the softmax of ``model(x)`` and of
    ``model(x.flip(-1))`` (the mirror image); the plain accuracy comes from the first forward
    pass at no extra cost. Counts stay on the device and are read once at the end.

    Args:
        model: the network (put in eval mode for the pass, then restored).
        loader: a finetune_kit loader (``iter_epoch(0)`` yields ``(x, y)`` on the device).
        device: where the batches are.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (autocast dtype).
        flip: also evaluate the flipped images.

    Returns:
        ``{"accuracy": plain, "tta_accuracy": with flip (= plain without flip), "images": n}``.

    Example:
        >>> from finetune_kit.data import DeviceLoader, ImageTensorDataset
        >>> ds = ImageTensorDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 0, 1]), ["a", "b"])
        >>> loader = DeviceLoader(ds, batch_size=2, mean=(0.5,), std=(0.5,))
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> flip_tta_evaluate(net, loader, device=torch.device("cpu"))["images"]
        4
    """
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    was_training = model.training
    model.eval()
    counts = torch.zeros(3, dtype=torch.int64, device=device)
    for x, y in loader.iter_epoch(0):
        with autocast_to(device, dtype):
            probs = model(x).float().softmax(dim=1)
            tta = (probs + model(x.flip(-1)).float().softmax(dim=1)) if flip else probs
        counts += torch.stack(
            [(probs.argmax(1) == y).sum(), (tta.argmax(1) == y).sum(), torch.ones_like(y).sum()]
        )
    model.train(was_training)
    plain, tta, n = counts.tolist()
    return {"accuracy": plain / max(n, 1), "tta_accuracy": tta / max(n, 1), "images": n}


class TimeToAccuracy(fk.Callback):
    """After every epoch, time the run so far and evaluate the test set (flip TTA).

    Call :meth:`start` right before ``trainer.fit()``. The test evaluations are timed
    separately and left out of ``fit_s``; everything else the Trainer does is counted.

    Args:
        threshold: test accuracy (flip TTA) to reach, e.g. 0.94.
        flip: evaluate with flip test-time augmentation.
        budget_s: stop once ``fit_s`` passes this many seconds (None: run every epoch).
        stop_at_threshold: stop at the first epoch that reaches the threshold.
        eval_raw: with an EMA, also evaluate the raw weights (``raw_acc_tta``).

    Example:
        >>> TimeToAccuracy(threshold=0.94).reached is None
        True
    """

    def __init__(
        self,
        *,
        threshold: float,
        flip: bool = True,
        budget_s: float | None = None,
        stop_at_threshold: bool = False,
        eval_raw: bool = False,
    ) -> None:
        self.threshold, self.flip, self.budget_s = threshold, flip, budget_s
        self.stop_at_threshold, self.eval_raw = stop_at_threshold, eval_raw
        self.rows: list[dict[str, Any]] = []
        self.reached: dict[str, Any] | None = None
        self.started = 0.0
        self.eval_s = 0.0
        self._left_eval = 0.0

    def start(self) -> None:
        """Start the clock (call right before ``fit()``)."""
        self.started = time.perf_counter()

    def on_validation_end(self, trainer: fk.Trainer) -> None:
        synchronize(trainer.device)
        now = time.perf_counter()
        fit_s = now - self.started - self.eval_s
        result = self._evaluate(trainer, trainer.eval_model)
        raw = float("nan")
        if self.eval_raw and trainer.eval_model is not trainer.model:
            raw = self._evaluate(trainer, trainer.model)["tta_accuracy"]
        self._left_eval = time.perf_counter()
        self.eval_s += self._left_eval - now
        metrics = trainer.state.metrics
        row = {
            "epoch": metrics["epoch"],
            "fit_s": fit_s,
            "wall_s": fit_s + self.eval_s,
            "train_loss": metrics["train_loss"],
            "train_acc": metrics["train_accuracy"],
            "test_acc": result["accuracy"],
            "test_acc_tta": result["tta_accuracy"],
            "lr": metrics["lr"],
            "raw_acc_tta": raw,
            "epoch_end_s": float("nan"),
        }
        self.rows.append(row)
        if self.reached is None and row["test_acc_tta"] >= self.threshold:
            self.reached = row
            if self.stop_at_threshold:
                trainer.request_stop(f"test accuracy {row['test_acc_tta']:.4f} reached")
        if self.budget_s is not None and fit_s >= self.budget_s:
            trainer.request_stop(f"time budget of {self.budget_s} s used")

    def _evaluate(self, trainer: fk.Trainer, model: nn.Module) -> dict[str, float]:
        return flip_tta_evaluate(
            model,
            trainer.loaders.test,
            device=trainer.device,
            precision=trainer.precision.name,
            flip=self.flip,
        )

    def on_epoch_end(self, trainer: fk.Trainer) -> None:
        # the default callbacks before this one wrote the epoch's checkpoint and log rows
        self.rows[-1]["epoch_end_s"] = time.perf_counter() - self._left_eval

    def best_within(self, budget_s: float) -> dict[str, Any] | None:
        """The epoch with the best flip-TTA test accuracy among those with ``fit_s <= budget``."""
        inside = [r for r in self.rows if r["fit_s"] <= budget_s]
        return max(inside, key=lambda r: r["test_acc_tta"]) if inside else None


def subset_bundle(
    bundle: fk.DataBundle, *, train_size: int | None, test_size: int | None, seed: int = 0
) -> fk.DataBundle:
    """A bundle of the first ``train_size`` / ``test_size`` images of a seeded permutation.

    The preset, class names and validation fraction are kept; normalisation statistics are
    those of the subset. ``None`` keeps a split whole.
    """
    if train_size is None and test_size is None:
        return bundle
    g = torch.Generator().manual_seed(seed)

    def take(split: Any, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.randperm(len(split.targets), generator=g)[:n]
        return split.images[keep], split.targets[keep]

    return fk.create_datasets(
        "tensors",
        train=take(bundle.train, train_size),
        test=take(bundle.test, test_size),
        val_fraction=bundle.val_fraction,
        preset=bundle.preset.name,
        class_names=list(bundle.class_names),
        seed=seed,
    )


def _config(args: argparse.Namespace, sizes: dict[str, Any], output_dir: str) -> fk.RunConfig:
    overrides = list(args.overrides)
    for key, flag in (
        ("train.epochs", "epochs"),
        ("loader.batch_size", "batch_size"),
        ("train.precision", "precision"),
        ("data.root", "data_root"),
    ):
        value = sizes.get(flag, getattr(args, flag, None))
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    overrides += [
        f"train.device={json.dumps(args.device)}",
        "train.progress=false",
        f"train.output_dir={json.dumps(output_dir)}",
    ]
    return fk.apply_overrides(fk.load_config(args.config), overrides)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the recipe (TOML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.lr=0.1 (repeatable)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--scale",
        choices=["auto", *SCALES],
        default="auto",
        help="default sizes: gpu (the whole recipe) or cpu (a subset)",
    )
    p.add_argument("--threshold", type=float, default=0.94, help="test accuracy to reach")
    p.add_argument("--budget", type=float, default=60.0, help="report the best within (s)")
    p.add_argument("--stop-at-budget", action="store_true", help="stop once it is used")
    p.add_argument("--stop-at-threshold", action="store_true", help="stop when reached")
    p.add_argument("--no-tta", action="store_true", help="evaluate without flip TTA")
    p.add_argument(
        "--eval-raw",
        action="store_true",
        default=None,
        help="with an EMA, also evaluate the raw weights (raw_acc_tta)",
    )
    p.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="skip the Trainer's per-epoch checkpoint (measure its cost)",
    )
    for flag, kind in (
        ("epochs", int),
        ("batch-size", int),
        ("train-size", int),
        ("test-size", int),
        ("precision", str),
    ):
        p.add_argument(f"--{flag}", type=kind, default=None)
    p.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST files")
    p.add_argument("--output-dir", default=None, help="run directory (default: a temporary one)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    scale = args.scale
    if scale == "auto":
        from finetune_kit.runtime import resolve_device

        scale = "gpu" if resolve_device(args.device).type == "cuda" else "cpu"
    sizes = dict(SCALES[scale])
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    return {"scale": scale, **sizes}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train the recipe, print the per-epoch table and the summary; return the results."""
    args = parse_args(argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _sizes(args)
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(args, sizes, args.output_dir or f"{tmp}/run")
        bundle = subset_bundle(
            build_datasets(config),
            train_size=sizes["train_size"],
            test_size=sizes["test_size"],
            seed=config.train.seed,
        )
        model = build_model(config, bundle)
        timer = TimeToAccuracy(
            threshold=args.threshold,
            flip=not args.no_tta,
            budget_s=args.budget if args.stop_at_budget else None,
            stop_at_threshold=args.stop_at_threshold,
            eval_raw=sizes["eval_raw"],
        )
        callbacks: list[fk.Callback] = [timer]
        if args.no_checkpoints:
            callbacks.insert(0, fk.ModelCheckpoint(monitor=None, save_last=False, save_top_k=0))
        trainer = fk.Trainer(model, bundle, config=config, callbacks=callbacks)
        env = environment(trainer.device)
        print(describe(env))
        print(
            f"# {args.config.name}: {config.model.name}, {len(bundle.train)} training / "
            f"{len(bundle.test)} test images, {config.train.epochs} epochs, batch "
            f"{config.loader.batch_size}, precision {config.train.precision}, "
            f"{'flip TTA' if not args.no_tta else 'no TTA'}; sizes {sizes}",
            flush=True,
        )
        timer.start()
        trainer.fit()
    rows, reached, best = timer.rows, timer.reached, timer.best_within(args.budget)
    _print_summary(args, rows, reached, best)
    result = {
        "benchmark": "time_to_accuracy",
        "environment": env,
        "config": config.to_dict(),
        "sizes": sizes,
        "threshold": args.threshold,
        "budget_s": args.budget,
        "epochs": rows,
        "reached": reached,
        "best_within_budget": best,
        "eval_s": timer.eval_s,
    }
    if args.json:
        write_json(args.json, result)
    return result


def _print_summary(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    reached: dict[str, Any] | None,
    best: dict[str, Any] | None,
) -> None:
    print()
    print(
        markdown_table(
            rows,
            [
                "epoch",
                "fit_s",
                "wall_s",
                "train_loss",
                "train_acc",
                "test_acc",
                "test_acc_tta",
                "raw_acc_tta",
                "lr",
                "epoch_end_s",
            ],
        )
    )
    print()
    if reached:
        print(
            f"Reached {args.threshold:.1%} at epoch {reached['epoch']}: {reached['fit_s']:.2f} s "
            f"of fit() (test evaluations excluded; {reached['wall_s']:.2f} s with them)."
        )
    else:
        top = max(r["test_acc_tta"] for r in rows)
        print(f"Did not reach {args.threshold:.1%} (best {top:.2%}).")
    if best:
        print(
            f"Best within {args.budget:g} s: {best['test_acc_tta']:.2%} at epoch {best['epoch']} "
            f"({best['fit_s']:.2f} s)."
        )


if __name__ == "__main__":
    main()
