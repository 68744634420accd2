"""``finetune-kit train``: train or fine-tune from a config file (or resume a run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from finetune_kit.cli.common import EXIT_INTERRUPTED, add_overrides
from finetune_kit.errors import ConfigError

NAME = "train"
HELP = "train or fine-tune a model from a config file"


def _lr(text: str) -> float | str:
    """``--lr``: a number, or ``find`` (run the lr range test first)."""
    if text == "find":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'find', got {text!r}") from None


def _threads(text: str) -> int | str:
    """``--threads``: a positive number of CPU threads, or ``auto``."""
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")


# Shortcut flags: --lr 0.1 is --set optim.lr=0.1.
SHORTCUTS = {
    "epochs": ("train.epochs", int),
    "lr": ("optim.lr", _lr),
    "batch_size": ("loader.batch_size", int),
    "device": ("train.device", str),
    "precision": ("train.precision", str),
    "seed": ("train.seed", int),
    "threads": ("train.threads", _threads),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit train``."""
    p.add_argument("--config", type=Path, help="TOML config file (see examples/configs/)")
    add_overrides(p)
    p.add_argument("--resume", metavar="CKPT", help="checkpoint or run directory to resume from")
    p.add_argument("--output-dir", help="run directory (train.output_dir)")
    p.add_argument("--overwrite", action="store_true", help="reuse an existing run directory")
    for flag, (key, kind) in SHORTCUTS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, help=f"sets {key}")
    p.add_argument("--no-test", action="store_true", help="skip the test report at the end")


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--lr 0.1`` and friends as ``--set`` strings (values written as JSON, valid TOML)."""
    pairs = [(key, getattr(args, flag)) for flag, (key, _) in SHORTCUTS.items()]
    pairs += [("train.output_dir", args.output_dir), ("train.overwrite", args.overwrite or None)]
    return [f"{key}={json.dumps(value)}" for key, value in pairs if value is not None]


def _sets_output_dir(overrides: list[str]) -> bool:
    return any(item.split("=", 1)[0].strip() in ("train.output_dir", "output_dir") for item in overrides)


def _run_home(resume: str) -> Path:
    """The directory a resume continues in: a run (or recipe) directory, or a checkpoint's."""
    path = Path(resume)
    return path if path.is_dir() else path.parent


def run(args: argparse.Namespace) -> int:
    """Train, then test unless ``--no-test``; exit 130 when interrupted (a checkpoint was saved)."""
    from finetune_kit.config import apply_overrides, load_config
    from finetune_kit.training.from_config import build_trainer, config_from_checkpoint

    if args.config is not None:
        config = load_config(args.config)
    elif args.resume is not None:
        config = config_from_checkpoint(args.resume)
    else:
        raise ConfigError(
            "finetune-kit train needs --config FILE (or --resume CKPT). "
            "Try: finetune-kit train --config examples/configs/quickstart.toml"
        )
    overrides = args.overrides + _flag_overrides(args)
    if args.resume is not None and not _sets_output_dir(overrides):
        # Continue in the resumed run's own directory; --output-dir forks it into a new one.
        overrides.append(f"train.output_dir={json.dumps(str(_run_home(args.resume)))}")
    config = apply_overrides(config, overrides)
    if config.finetune.recipe is not None:
        from finetune_kit.training.finetuner import FineTuner

        tuner = FineTuner.from_config(config)
        tuner.resume_hint = "finetune-kit train --resume {output_dir}"
        history = tuner.fit(resume=args.resume is not None)
        trainer = tuner.trainer
    else:
        trainer = build_trainer(config, resume=args.resume)
        trainer.resume_hint = "finetune-kit train --resume {run_dir}"
        trainer.complete_hint = (
            "The run in {run_dir} is complete ({epochs}); to train longer: "
            "finetune-kit train --resume {run_dir} --epochs N (N larger)."
        )
        history = trainer.fit(resume=args.resume)
    if history.interrupted:
        return EXIT_INTERRUPTED
    if not args.no_test:
        trainer.test()
    print(f"Run directory: {trainer.run_dir.root}")
    return 0
