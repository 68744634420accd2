"""``finetune-kit tune``: search hyper-parameters with Optuna, from a config with a ``[tune]`` section."""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune_kit.cli.common import EXIT_INTERRUPTED, add_overrides

NAME = "tune"
HELP = "search learning rates, strategies and other config keys with Optuna (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``finetune-kit tune``."""
    p.add_argument(
        "--config", type=Path, required=True, help="TOML config with a [tune] section (the search space)"
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="stop when N trials are finished, counting earlier runs and other workers (default 20)",
    )
    p.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or a journal file PATH.log "
        "(default: STUDY_DIR/study.db)",
    )
    p.add_argument(
        "--study-name", metavar="NAME", help="the study in the storage (default: STUDY_DIR's name)"
    )
    p.add_argument(
        "--output-dir", metavar="STUDY_DIR", help="the study directory (default: train.output_dir)"
    )
    p.add_argument("--final", action="store_true", help="retrain the best config and test it")
    p.add_argument(
        "--metric", default="val_accuracy", help="logged metric to optimise (default val_accuracy)"
    )
    p.add_argument(
        "--pruner",
        default="successive_halving",
        help="successive_halving (default), hyperband, median or none",
    )
    add_overrides(p)


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the study; exit 130 when interrupted (run the same command to go on)."""
    from finetune_kit.tuning import load_tune_config, require_optuna, tune

    require_optuna()
    config, space = load_tune_config(args.config, args.overrides)
    result = tune(
        config,
        space,
        n_trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        pruner=args.pruner,
        metric=args.metric,
        output_dir=args.output_dir,
        final=args.final,
    )
    if result.interrupted:
        print(
            "Study interrupted; run the same command again to continue it.",
            flush=True,
        )
        return EXIT_INTERRUPTED
    return 0
