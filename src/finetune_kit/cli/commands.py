"""The bodies of the ``finetune-kit`` subcommands: each turns parsed arguments into API calls.

Heavy modules (torch and the library's parts) are imported inside each command, so that
``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from finetune_kit.cli.parser import SHORTCUTS
from finetune_kit.errors import ConfigError

__all__ = ["COMMANDS", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--lr 0.1`` and friends as ``--set`` strings (values written as JSON, valid TOML)."""
    pairs = [(key, getattr(args, flag)) for flag, (key, _) in SHORTCUTS.items()]
    pairs += [("train.output_dir", args.output_dir), ("train.overwrite", args.overwrite or None)]
    return [f"{key}={json.dumps(value)}" for key, value in pairs if value is not None]


def _train(args: argparse.Namespace) -> int:
    from finetune_kit.config import load_config
    from finetune_kit.config.overrides import apply_overrides
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
    config = apply_overrides(config, args.overrides + _flag_overrides(args))
    if config.finetune.recipe is not None:
        from finetune_kit.training.finetuner import FineTuner

        tuner = FineTuner.from_config(config)
        history = tuner.fit(resume=args.resume is not None)
        trainer = tuner.trainer
    else:
        trainer = build_trainer(config, resume=args.resume)
        history = trainer.fit(resume=args.resume)
    if history.interrupted:
        return EXIT_INTERRUPTED
    if not args.no_test:
        trainer.test()
    print(f"Run directory: {trainer.run_dir.root}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from finetune_kit.training.from_config import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, device=args.device)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from finetune_kit.inference import predict

    print(predict(args.checkpoint, args.images, top_k=args.top_k, device=args.device).table())
    return 0


def _export(args: argparse.Namespace) -> int:
    from finetune_kit.inference.export import export

    path = export(args.checkpoint, args.output, use_ema=not args.no_ema, overwrite=args.overwrite)
    print(f"Exported to {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    import finetune_kit as fk

    listers: dict[str, Callable[[str], list[str]]] = {
        "datasets": fk.list_datasets,
        "models": fk.list_models,
        "losses": fk.list_losses,
        "optimizers": fk.list_optimizers,
        "schedulers": fk.list_schedulers,
        "metrics": fk.list_metrics,
    }
    if hasattr(fk, "list_strategies"):
        listers["strategies"] = fk.list_strategies
    kind = args.kind if args.kind.endswith("s") else args.kind + "s"
    if kind not in listers:
        from finetune_kit.registry import did_you_mean

        raise ConfigError(
            f"Unknown kind {args.kind!r}.{did_you_mean(kind, list(listers))} Kinds: {', '.join(listers)}."
        )
    for name in listers[kind](args.pattern):
        print(name)
    return 0


def _verify_conv(args: argparse.Namespace) -> int:
    from finetune_kit.scratch import run_verify

    text, passed = run_verify(device=args.device, model=args.model)
    print(text)
    return 0 if passed else 1


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
    "list": _list,
    "verify-conv": _verify_conv,
}
