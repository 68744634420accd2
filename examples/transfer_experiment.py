"""Transfer experiment: does fine-tuning a pretrained backbone beat training from scratch?

On real Fashion-MNIST: pretrain a model on classes 0-4 (T-shirt, trouser, pullover, dress,
coat), then learn classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) from only 100 labelled
images per class, once with every freezing strategy (starting from the pretrained backbone and
a new head) and once from scratch on the same 500 images. Accuracy is measured on the 5,000
test images of classes 5-9 and averaged over seeds; each seed draws its own 500 images, and all
strategies of a seed share them.

The recipe is fixed in advance (no tuning on the test set): AdamW, cosine schedule, batch 50,
lr 1e-3, or 1e-2 for the strategies that train only a few parameters (linear_probe, bitfit,
lora), the same number of epochs for every run (default 10). Inputs are normalised with the
pretraining data's statistics and augmented with a 2-pixel random crop and horizontal flips.

Usage::

    python examples/transfer_experiment.py --threads 1            # ConvNet, 3 seeds
    python examples/transfer_experiment.py --threads 1 --model resnet18 --seeds 1 \\
        --pretrain-per-class 400 --pretrain-epochs 2 --epochs 5 --test-per-class 200 \\
        --strategies full linear_probe freeze_first lora          # ResNet-18 on a CPU budget
    python examples/transfer_experiment.py --smoke                # seconds; used by the tests

Results (a table) are printed and written to ``--out`` as ``results_<model>.json``; see
docs/tutorials/transfer_experiment.md for measured numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import finetune_kit as fk
from finetune_kit.data import get_preset

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
SMALL_LR_STRATEGIES = ("linear_probe", "bitfit", "lora")
MODELS = {  # name -> (create_model keywords, freeze_first n)
    "convnet": ({}, 2),  # conv1, conv2 frozen; fc1 and head train
    "resnet18": ({"small_input": True}, 3),  # stem, layer1, layer2 frozen
}


def strategies(model: str, epochs: int) -> dict[str, dict]:
    """The strategies compared, with their options for ``model``."""
    n_stages = 4 if model == "convnet" else 6
    return {
        "full": {},
        "linear_probe": {},
        "freeze_first": {"n": MODELS[model][1]},
        "gradual_unfreeze": {"every": max(1, epochs // n_stages)},
        "discriminative_lr": {"decay": 0.5},
        "bitfit": {},
        "lora": {"rank": 4, "alpha": 8},
    }


def pick(
    images: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...], per_class: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random images of each class (all with None); labels become 0..k-1."""
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        where = (labels == c).nonzero().flatten()
        if per_class is not None:
            where = where[torch.randperm(len(where), generator=gen)[:per_class]]
        chosen.append(where)
    index = torch.cat(chosen).sort().values
    return images[index], labels[index] - classes[0]


def bundle(train, test, names, stats) -> fk.DataBundle:
    """A DataBundle normalised with the pretraining data's statistics ``stats``."""
    preset = dataclasses.replace(
        get_preset("fashion"), name="fashion_source_stats", normalization="imagenet"
    )  # i.e. the weights' statistics
    return fk.create_datasets(
        "tensors",
        train=train,
        test=test,
        class_names=names,
        val_fraction=0,
        preset=preset,
        weights_meta={"mean": stats[0], "std": stats[1]},
    )


def train(
    model,
    data,
    workdir: Path,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int,
    strategy: str = "full",
    options: dict | None = None,
    bn_policy: str = "eval",
    max_steps: int | None = None,
) -> tuple[fk.Trainer, float]:
    """Fit with the fixed recipe; return the trainer and the test accuracy."""
    trainer = fk.Trainer(
        model,
        data,
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adamw",
        lr=lr,
        weight_decay=0.01,
        scheduler="cosine",
        seed=seed,
        strategy=strategy,
        options=options or {},
        bn_policy=bn_policy,
        progress=False,
        output_dir=str(workdir),
        overwrite=True,
        device="cpu",
        max_steps=max_steps,
    )
    trainer.fit()
    return trainer, trainer.evaluate("test")["accuracy"]


def pretrain(args, fashion, stats, workdir: Path) -> tuple[dict, float]:
    """Pretrain on classes 0-4; return the state dict and the source test accuracy."""
    x, y, tx, ty, names = fashion
    src_train = pick(x, y, SOURCE, args.pretrain_per_class, seed=1234)
    src_test = pick(tx, ty, SOURCE, args.test_per_class, seed=1234)
    data = bundle(src_train, src_test, names[:5], stats)
    kwargs, _ = MODELS[args.model]
    model = fk.create_model(args.model, num_classes=5, in_channels=1, seed=0, **kwargs)
    _, acc = train(
        model,
        data,
        workdir / "pretrain",
        epochs=args.pretrain_epochs,
        lr=1e-3,
        seed=0,
        batch_size=128,
        max_steps=args.max_steps,
    )
    print(
        f"pretrained {args.model} on {len(src_train[1])} images of classes 0-4: "
        f"source test accuracy {acc:.4f}",
        flush=True,
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, acc


def finetune_all(args, fashion, stats, pretrained: dict, workdir: Path) -> list[dict]:
    """Every strategy and scratch, for every seed; one result dict per run."""
    x, y, tx, ty, names = fashion
    test = pick(tx, ty, TARGET, args.test_per_class, seed=4321)
    kwargs, _ = MODELS[args.model]
    runs = [("scratch", "full", {})] + [
        (s, s, o) for s, o in strategies(args.model, args.epochs).items() if s in args.strategies
    ]
    results = []
    for seed in range(args.seeds):
        data = bundle(pick(x, y, TARGET, args.per_class, seed=seed), test, names[5:], stats)
        for label, strategy, options in runs:
            model = fk.create_model(args.model, num_classes=5, in_channels=1, seed=seed, **kwargs)
            if label != "scratch":
                head = fk.model_info(model).head
                body = {k: v for k, v in pretrained.items() if not k.startswith(head + ".")}
                missing, unexpected = model.load_state_dict(body, strict=False)
                if unexpected or any(not k.startswith(head + ".") for k in missing):
                    raise RuntimeError(f"pretrained weights do not fit: {missing} {unexpected}")
            lr = args.lr * (args.small_lr_factor if strategy in SMALL_LR_STRATEGIES else 1)
            start = time.perf_counter()
            trainer, acc = train(
                model,
                data,
                workdir / f"{label}_{seed}",
                epochs=args.epochs,
                lr=lr,
                seed=seed,
                batch_size=args.batch_size,
                strategy=strategy,
                options=options,
                bn_policy=args.bn_policy,
                max_steps=args.max_steps,
            )
            summary = trainer.plan.summary()
            results.append(
                {
                    "run": label,
                    "seed": seed,
                    "accuracy": acc,
                    "lr": lr,
                    "options": options,
                    "trainable": summary.trainable_params,
                    "params": summary.total_params,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(f"  seed {seed} {label:18s} acc {acc:.4f}  ({results[-1]['seconds']} s)", flush=True)
    return results


def table(results: list[dict]) -> str:
    """Mean (and spread) of the test accuracy per run, and the gain over scratch."""
    runs = list(dict.fromkeys(r["run"] for r in results))
    accs = {run: [r["accuracy"] for r in results if r["run"] == run] for run in runs}
    base = statistics.mean(accs["scratch"])
    lines = [
        "| run | trainable params | test accuracy (mean of seeds) | min-max | vs scratch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        first = next(r for r in results if r["run"] == run)
        mean = statistics.mean(accs[run])
        gain = "" if run == "scratch" else f"{100 * (mean - base):+.1f} pp"
        lines.append(
            f"| {run} | {first['trainable']:,} | {100 * mean:.2f}% | "
            f"{100 * min(accs[run]):.1f}-{100 * max(accs[run]):.1f} | {gain} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="convnet")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--per-class", type=int, default=100, help="labelled target images per class")
    p.add_argument(
        "--pretrain-per-class", type=int, default=None, help="source images per class (default: all 6,000)"
    )
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--small-lr-factor",
        type=float,
        default=10.0,
        help=f"lr multiplier for {', '.join(SMALL_LR_STRATEGIES)}",
    )
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument(
        "--test-per-class", type=int, default=None, help="target test images per class (default: all 1,000)"
    )
    p.add_argument(
        "--bn-policy",
        default="eval",
        choices=["eval", "train", "frozen_affine"],
        help="BatchNorm policy of the fine-tuning runs",
    )
    p.add_argument("--strategies", nargs="+", default=list(strategies("convnet", 1)))
    p.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--out", default="runs/transfer", help="where results_<model>.json goes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--smoke", action="store_true", help="a few steps on tiny subsets")
    args = p.parse_args(argv)
    args.max_steps = None
    if args.smoke:
        args.seeds, args.per_class, args.pretrain_per_class = 1, 4, 20
        args.pretrain_epochs, args.epochs, args.test_per_class = 1, 1, 10
        args.max_steps, args.batch_size = 2, 10
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = fk.create_datasets("fashion_mnist", root=args.root, val_fraction=0, download=False)
    fashion = (
        data.train.images,
        data.train.targets,
        data.test.images,
        data.test.targets,
        list(data.class_names),
    )
    src = data.train.images[data.train.targets < 5].float() / 255
    stats = ((src.mean().item(),), (src.std().item(),))
    with tempfile.TemporaryDirectory() as tmp:
        pretrained, source_acc = pretrain(args, fashion, stats, Path(tmp))
        results = finetune_all(args, fashion, stats, pretrained, Path(tmp))
    wall = time.perf_counter() - start
    text = table(results)
    print(
        f"\n{args.model}: {args.per_class} images per class, {args.seeds} seed(s), "
        f"{args.epochs} epochs; wall time {wall / 60:.1f} min\n{text}"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    report = {
        "command": " ".join(["python", "examples/transfer_experiment.py", *given]),
        "args": {k: v for k, v in vars(args).items()},
        "source_accuracy": source_acc,
        "wall_seconds": round(wall, 1),
        "results": results,
        "table": text,
    }
    (out / f"results_{args.model}{'_smoke' if args.smoke else ''}.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    return results


if __name__ == "__main__":
    main()
