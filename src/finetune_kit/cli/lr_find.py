"""``finetune-kit lr-find``: the learning-rate range test of a config, its suggestion and plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune_kit.cli.common import add_overrides
from finetune_kit.errors import ConfigError, OutputDirError

NAME = "lr-find"
HELP = "run the learning-rate range test for a config: print the suggested lr, plot the curve"

OUTPUTS = ("lr_find.png", "lr_find.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit lr-find``."""
    p.add_argument("--config", type=Path, required=True, help="TOML config file (see examples/configs/)")
    add_overrides(p)
    p.add_argument(
        "--output-dir",
        help="where lr_find.png and lr_find.json go (default: <train.output_dir>-lr-find); "
        "an earlier lr-find's two files there are replaced, nothing else is touched",
    )
    p.add_argument("--num-steps", type=int, default=100, help="steps of the test (default 100)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")


def _output_dir(args: argparse.Namespace, output_dir: str) -> Path:
    out = Path(args.output_dir) if args.output_dir else Path(output_dir.rstrip("/\\") + "-lr-find")
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--output-dir {out} is a file; give a directory.")
    return out


def run(args: argparse.Namespace) -> int:
    """Print the suggestion next to the config's lr; write the curve's PNG and JSON."""
    from finetune_kit.callbacks import plots_available
    from finetune_kit.config import apply_overrides, load_config
    from finetune_kit.training.from_config import build_trainer
    from finetune_kit.training.lr_search import save_lr_search

    config = apply_overrides(load_config(args.config), args.overrides)
    if config.finetune.recipe is not None:
        raise ConfigError(
            f"finetune-kit lr-find tests one training run, but this config runs the recipe "
            f'{config.finetune.recipe!r} in stages. Set optim.lr = "find" instead: each stage '
            "then runs the test with its own freezing before it trains."
        )
    out = _output_dir(args, config.train.output_dir)
    trainer = build_trainer(config)
    result = trainer.lr_find(start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.num_steps)
    out.mkdir(parents=True, exist_ok=True)
    png = out / OUTPUTS[0] if plots_available() else None
    save_lr_search(result, out / OUTPUTS[1], png)
    stopped = f"; the loss diverged after {len(result.lrs)} steps" if result.diverged else ""
    print(f"lr range test: {args.num_steps} steps from {args.start_lr:g} to {args.end_lr:g}{stopped}")
    if result.suggested is None:
        print("no suggestion: too few steps before the loss diverged; lower --end-lr or raise --num-steps")
    else:
        steepest = result.suggestion_steepest
        also = f"; steepest descent at {steepest:.3g}" if steepest is not None else ""
        print(f"suggested lr: {result.suggested:.3g} (valley{also})")
    configured = config.optim.lr
    print(f"config's lr:  {configured if isinstance(configured, str) else f'{configured:g}'}")
    print(
        f"curve: {png if png is not None else 'not drawn (pip install matplotlib)'}; data: {out / OUTPUTS[1]}"
    )
    return 0
