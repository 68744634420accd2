"""CPU time to 91%: the library's quickstart against the same recipe written out by hand.

Two loops train the same model from the same initial weights with the same recipe, in one
process, alternately (ABAB: library, hand, library, hand, ...), so a machine whose load changes
during the run slows both alike:

(A) **library** -- ``fk.Trainer`` on ``examples/configs/quickstart.toml`` (``bn_convnet``, SGD
    with Nesterov momentum on a one-cycle schedule, label smoothing, batch 256, bf16 autocast
    where the CPU computes in bfloat16 natively, channels_last), with everything ``fit()`` does:
    set-up, the device loader, callbacks, the per-epoch checkpoint and CSV log;
(B) **hand** -- the same model and recipe written out below in plain PyTorch, the way a careful
    user writes it: the training set as one normalised float tensor, one ``randperm`` per epoch,
    ``index_select`` batches, ``torch.optim.SGD`` + ``torch.optim.lr_scheduler.OneCycleLR``.

After every epoch both are evaluated on the whole test set by the same function, outside the
clocks. The clocks (wall and the process's CPU time) start when training starts (``fit()`` is
called; the hand loop is entered) and count everything but those evaluations. Printed: every
epoch of every run, then per loop the median time to ``--threshold`` (91%) and the ratio
library / hand per pair and of the medians, in wall-clock and in CPU time. Both loops use the
same thread count (``--threads``, default: the library's ``auto`` policy, decided once).

On a shared machine wall-clock seconds are inflated by other jobs; the ratio of interleaved
runs and the CPU-time figures hold up better (CPU time still grows when the caches and memory
bandwidth are shared). The goal: library / hand <= 1.05.

Run::

    python benchmarks/cpu_time_to_accuracy.py                  # 2 pairs, ~2-3 min on 2 quiet cores
    python benchmarks/cpu_time_to_accuracy.py --repeats 3 --json cpu_tta.json
    python benchmarks/cpu_time_to_accuracy.py --threads 1      # one thread for both loops
    python benchmarks/cpu_time_to_accuracy.py --set train.precision=32   # float32 in both
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from common import REPO_ROOT, autocast_to, describe, environment, markdown_table, write_json
from time_to_accuracy import subset_bundle
from torch import nn

import finetune_kit as fk
from finetune_kit.runtime import PrecisionMode
from finetune_kit.runtime.threads import plan_threads, use_threads
from finetune_kit.training.from_config import build_datasets, build_model

__all__ = ["EpochClock", "Recipe", "hand_model", "hand_train", "main", "test_accuracy"]

DEFAULT_CONFIG = REPO_ROOT / "examples" / "configs" / "quickstart.toml"
CPU = torch.device("cpu")


# ------------------------------------------------------------------ the hand-written reference
def hand_model(in_channels: int, num_classes: int, width: int = 16) -> nn.Sequential:
    """``bn_convnet`` in plain PyTorch: three conv-pool-BN-ReLU blocks and a 3x3-grid head.

    Example:
        >>> hand_model(1, 10)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def block(cin: int, cout: int) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        return [conv, nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, width),
        *block(width, 2 * width),
        *block(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Linear(36 * width, num_classes),
    )


def copy_state(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``source`` into ``target``, in registration order.

    Raises:
        ValueError: the two models do not have the same tensors (shapes, in order).

    Example:
        >>> a, b = hand_model(1, 10), hand_model(1, 10)
        >>> copy_state(a, b); bool(torch.equal(a[0].weight, b[0].weight))
        True
    """
    src, dst = list(source.state_dict().values()), list(target.state_dict().values())
    if [t.shape for t in src] != [t.shape for t in dst]:
        raise ValueError("the hand-written model does not match the library's model tensor by tensor")
    with torch.no_grad():
        for s, d in zip(src, dst, strict=True):
            d.copy_(s)


@dataclass(frozen=True)
class Recipe:
    """The training recipe both loops run, read from a run config.

    Example:
        >>> Recipe.from_config(fk.load_config(DEFAULT_CONFIG)).batch_size
        256
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    label_smoothing: float
    dtype: torch.dtype | None
    channels_last: bool
    seed: int

    @classmethod
    def from_config(cls, config: fk.RunConfig) -> Recipe:
        """The recipe of ``config``; the hand loop implements SGD + plain one-cycle only."""
        optim, train = config.optim, config.train
        unsupported = {
            "optimizer": optim.optimizer != "sgd",
            "scheduler": optim.scheduler != "onecycle" or optim.scheduler_options or optim.warmup_epochs,
            "augment": config.loader.augment,
            "ema, mixup, cutmix, grad_clip": optim.ema
            or optim.mixup_alpha
            or optim.cutmix_alpha
            or optim.grad_clip,
        }
        bad = [key for key, flag in unsupported.items() if flag]
        if bad:
            raise fk.ConfigError(
                f"The hand-written loop implements SGD, one-cycle with its default options and no "
                f"augmentation; this config differs in: {', '.join(bad)}."
            )
        return cls(
            epochs=train.epochs,
            batch_size=config.loader.batch_size,
            lr=optim.lr,
            momentum=optim.momentum,
            nesterov=optim.nesterov,
            weight_decay=optim.weight_decay,
            label_smoothing=optim.label_smoothing,
            dtype=PrecisionMode.resolve(train.precision, CPU).autocast_dtype,
            channels_last=bool(train.channels_last),
            seed=train.seed,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last or contiguous."""
        return torch.channels_last if self.channels_last else torch.contiguous_format


def hand_train(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    recipe: Recipe,
    on_epoch: Callable[[int, nn.Module], None],
) -> None:
    """Train ``model`` on uint8 ``images`` with ``recipe``; ``on_epoch(epoch, model)`` after each.

    Example:
        >>> net = hand_model(1, 2, width=2)
        >>> recipe = Recipe(1, 4, 0.1, 0.9, True, 5e-4, 0.1, None, False, 0)
        >>> hand_train(net, torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.zeros(8).long(),
        ...            (0.5,), (0.5,), recipe, lambda epoch, m: print(epoch))
        1
    """
    fmt = recipe.memory_format
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    x_all = ((images.float() / 255 - m) / s).contiguous(memory_format=fmt)  # normalised once
    model.to(memory_format=fmt).train()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )
    steps = -(-len(targets) // recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.seed)
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(targets), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            x = x_all.index_select(0, index).contiguous(memory_format=fmt)
            with autocast_to(CPU, recipe.dtype):
                loss = criterion(model(x), targets.index_select(0, index))
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        on_epoch(epoch + 1, model)


# --------------------------------------------------------------------- the shared measurement
@torch.no_grad()
def test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None) -> float:
    """Accuracy of ``model`` on normalised ``x`` in batches of 1,000, in eval mode (restored).

    Example:
        >>> test_accuracy(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(3, 1, 2, 2),
        ...               torch.zeros(3).long(), None) in (0.0, 1.0)
        True
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64)
    for start in range(0, len(y), 1000):
        with autocast_to(CPU, dtype):
            logits = model(x[start : start + 1000])
        correct += (logits.argmax(1) == y[start : start + 1000]).sum()
    model.train(was_training)
    return correct.item() / max(len(y), 1)


@dataclass
class EpochClock:
    """Wall and CPU seconds of training, with the test evaluations after each epoch left out.

    Example:
        >>> clock = EpochClock(lambda model: 0.5)
        >>> clock.start(); clock.epoch_done(1, None); clock.rows[0]["test_acc"]
        0.5
    """

    evaluate: Callable[[nn.Module], float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    _start: tuple[float, float] = (0.0, 0.0)
    _paused: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        """Start both clocks (right before training starts)."""
        self._start, self._paused = (time.perf_counter(), time.process_time()), (0.0, 0.0)

    def elapsed(self) -> tuple[float, float]:
        """(wall, CPU) seconds of training so far."""
        wall, cpu = time.perf_counter(), time.process_time()
        return wall - self._start[0] - self._paused[0], cpu - self._start[1] - self._paused[1]

    def epoch_done(self, epoch: int, model: nn.Module) -> None:
        """Record the epoch's times, then evaluate with both clocks paused."""
        fit_s, cpu_s = self.elapsed()
        before = (time.perf_counter(), time.process_time())
        accuracy = self.evaluate(model)
        self._paused = (
            self._paused[0] + time.perf_counter() - before[0],
            self._paused[1] + time.process_time() - before[1],
        )
        self.rows.append({"epoch": epoch, "fit_s": fit_s, "cpu_s": cpu_s, "test_acc": accuracy})


class _LibraryEpochs(fk.Callback):
    """Hands each finished epoch (checkpoint and log written) to an :class:`EpochClock`."""

    def __init__(self, clock: EpochClock) -> None:
        self.clock = clock

    def on_epoch_end(self, trainer: fk.Trainer) -> None:
        self.clock.epoch_done(trainer.state.epoch, trainer.eval_model)


def run_library(config: fk.RunConfig, bundle: fk.DataBundle, evaluate: Callable) -> dict[str, Any]:
    """One library run: ``Trainer(...)`` then ``fit()``, clocked from the call to ``fit()``."""
    clock = EpochClock(evaluate)
    with tempfile.TemporaryDirectory() as tmp:
        run = fk.apply_overrides(config, [f"train.output_dir={json.dumps(tmp + '/run')}"])
        trainer = fk.Trainer(build_model(run, bundle), bundle, config=run, callbacks=[_LibraryEpochs(clock)])
        clock.start()
        trainer.fit()
        total = clock.elapsed()
    return {"rows": clock.rows, "total_s": total[0], "total_cpu_s": total[1]}


def run_hand(config: fk.RunConfig, bundle: fk.DataBundle, evaluate: Callable) -> dict[str, Any]:
    """One hand-written run from the library model's initial weights."""
    library_model = build_model(config, bundle)
    width = int(config.model.options.get("width", 16))
    model = hand_model(bundle.in_channels, bundle.num_classes, width)
    copy_state(library_model, model)
    clock = EpochClock(evaluate)
    clock.start()
    hand_train(
        model,
        bundle.train.images,
        bundle.train.targets,
        bundle.mean,
        bundle.std,
        Recipe.from_config(config),
        clock.epoch_done,
    )
    total = clock.elapsed()
    return {"rows": clock.rows, "total_s": total[0], "total_cpu_s": total[1]}


# ------------------------------------------------------------------------------------ the run
def reached(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first epoch row at or above ``threshold``, or None.

    Example:
        >>> reached([{"test_acc": 0.8}, {"test_acc": 0.92}], 0.91)
        {'test_acc': 0.92}
    """
    return next((row for row in rows if row["test_acc"] >= threshold), None)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the recipe (TOML)")
    p.add_argument("--threshold", type=float, default=0.91, help="test accuracy to reach")
    p.add_argument("--repeats", type=int, default=2, help="pairs of runs (library, hand)")
    p.add_argument("--threads", default="auto", help="torch threads for both loops, or auto")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key for both loops, e.g. --set train.precision=32 (repeatable)",
    )
    p.add_argument("--train-size", type=int, default=None, help="a seeded subset (smoke runs)")
    p.add_argument("--test-size", type=int, default=None, help="a seeded subset (smoke runs)")
    p.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST files")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def _config(args: argparse.Namespace, threads: int) -> fk.RunConfig:
    overrides = [*args.overrides, "train.progress=false", 'train.device="cpu"', f"train.threads={threads}"]
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.data_root is not None:
        overrides.append(f"data.root={json.dumps(str(args.data_root))}")
    return fk.apply_overrides(fk.load_config(args.config), overrides)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the ABAB comparison; print every epoch and the summary; return the results."""
    args = parse_args(argv)
    plan = plan_threads(int(args.threads) if args.threads != "auto" else "auto")
    config = _config(args, plan.threads)
    Recipe.from_config(config)  # a config the hand loop cannot follow fails before any work
    bundle = build_datasets(config)
    bundle = subset_bundle(bundle, train_size=args.train_size, test_size=args.test_size, seed=0)
    recipe = Recipe.from_config(config)
    mean, std = torch.tensor(bundle.mean).view(1, -1, 1, 1), torch.tensor(bundle.std).view(1, -1, 1, 1)
    x_test = ((bundle.test.images.float() / 255 - mean) / std).contiguous(memory_format=recipe.memory_format)

    def evaluate(model: nn.Module) -> float:
        return test_accuracy(model, x_test, bundle.test.targets, recipe.dtype)

    env = environment(CPU)
    with use_threads(plan.threads):
        env["torch_threads"] = plan.threads
        print(describe(env))
        print(f"# {plan.describe()}; precision {PrecisionMode.resolve(config.train.precision, CPU).name}")
        print(
            f"# {args.config.name}: {config.model.name}, {len(bundle.train)} training / "
            f"{len(bundle.test)} test images, {recipe.epochs} epochs, batch {recipe.batch_size}",
            flush=True,
        )
        runs = []
        for i in range(args.repeats):
            for loop, run in (("library", run_library), ("hand", run_hand)):
                result = run(config, bundle, evaluate) | {"loop": loop, "pair": i + 1}
                hit = reached(result["rows"], args.threshold)
                print(
                    f"  pair {i + 1} {loop}: "
                    + ", ".join(f"{r['test_acc']:.2%}" for r in result["rows"])
                    + (f"; {args.threshold:.1%} after {hit['fit_s']:.1f} s" if hit else ""),
                    flush=True,
                )
                runs.append(result)
    summary = summarize_runs(runs, args.threshold)
    _print(runs, summary, args.threshold)
    result = {
        "benchmark": "cpu_time_to_accuracy",
        "environment": env,
        "threads": plan.describe(),
        "config": config.to_dict(),
        "threshold": args.threshold,
        "runs": runs,
        "summary": summary,
    }
    if args.json:
        write_json(args.json, result)
    return result


def summarize_runs(runs: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per loop: median time to ``threshold`` (wall, CPU) and final accuracy; the ratios.

    Example:
        >>> row = lambda s: {"rows": [{"fit_s": s, "cpu_s": s, "test_acc": 0.95}], "total_s": s}
        >>> runs = [row(2.0) | {"loop": "library", "pair": 1}, row(1.0) | {"loop": "hand", "pair": 1}]
        >>> summarize_runs(runs, 0.9)["ratio_wall"]
        2.0
    """
    nan = float("nan")
    times = {}
    for loop in ("library", "hand"):
        hits = [reached(r["rows"], threshold) for r in runs if r["loop"] == loop]
        times[loop] = {
            "wall": [h["fit_s"] if h else nan for h in hits],
            "cpu": [h["cpu_s"] if h else nan for h in hits],
            "final_acc": [r["rows"][-1]["test_acc"] for r in runs if r["loop"] == loop],
        }
    out: dict[str, Any] = {"times": times}
    for clock in ("wall", "cpu"):
        lib, hand = times["library"][clock], times["hand"][clock]
        out[f"pair_ratios_{clock}"] = [a / b for a, b in zip(lib, hand, strict=True)]
        out[f"ratio_{clock}"] = statistics.median(lib) / statistics.median(hand)
    return out


def _print(runs: list[dict[str, Any]], summary: dict[str, Any], threshold: float) -> None:
    rows = [{"pair": r["pair"], "loop": r["loop"], **row} for r in runs for row in r["rows"]]
    print()
    print(markdown_table(rows, ["pair", "loop", "epoch", "fit_s", "cpu_s", "test_acc"]))
    print()
    table = []
    for loop, t in summary["times"].items():
        table.append(
            {
                "loop": loop,
                f"wall_to_{threshold:.1%}": statistics.median(t["wall"]),
                f"cpu_to_{threshold:.1%}": statistics.median(t["cpu"]),
                "final_acc": statistics.median(t["final_acc"]),
            }
        )
    print(markdown_table(table, list(table[0])))
    print()
    for clock in ("wall", "cpu"):
        pairs = ", ".join(f"{v:.3f}" for v in summary[f"pair_ratios_{clock}"])
        print(
            f"library / hand, time to {threshold:.1%} ({clock}): {summary[f'ratio_{clock}']:.3f} "
            f"(pairs: {pairs})"
        )


if __name__ == "__main__":
    main()
