"""The ``finetune-kit`` command.

``finetune-kit train --config FILE [--set key=value ...] [--resume CKPT] [--output-dir DIR]``,
``finetune-kit evaluate --checkpoint CKPT``, ``finetune-kit list KIND``,
``finetune-kit verify-conv``. Bad input exits with status 2 and one line on stderr saying what
is wrong and how to fix it; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from finetune_kit.distributed import teardown
from finetune_kit.errors import ConfigError, FinetuneKitError

__all__ = ["main"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# Shortcut flags: --lr 0.1 is --set optim.lr=0.1.
SHORTCUTS = {
    "epochs": ("train.epochs", int),
    "lr": ("optim.lr", float),
    "batch_size": ("loader.batch_size", int),
    "device": ("train.device", str),
    "precision": ("train.precision", str),
    "seed": ("train.seed", int),
}


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model from a config file")
    p.add_argument("--config", type=Path, help="TOML config file (see examples/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=0.1 (repeatable)")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint or run directory to resume from")
    p.add_argument("--output-dir", help="run directory (train.output_dir)")
    p.add_argument("--overwrite", action="store_true", help="reuse an existing run directory")
    for flag, (key, kind) in SHORTCUTS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, help=f"sets {key}")
    p.add_argument("--no-test", action="store_true", help="skip the test report at the end")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on its test set")
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a run directory")
    p.add_argument("--device", default="auto")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict the classes of image files with a trained model")
    p.add_argument("--checkpoint", required=True, help="an export directory, a .ckpt file or a run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image")
    p.add_argument("--device", default="cpu")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's weights as safetensors plus a JSON of metadata")
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a run directory")
    p.add_argument("--output", required=True, help="directory (or NAME.safetensors) to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered names of a kind")
    p.add_argument("kind", help="datasets, models, losses, optimizers, schedulers, metrics, strategies")
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'resnet*'")


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify-conv", help="check the from-scratch convolution against PyTorch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="also verify a whole converted model, e.g. resnet18")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``finetune-kit`` command."""
    parser = argparse.ArgumentParser(prog="finetune-kit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_predict, _add_export, _add_list, _add_verify):
        add(sub)
    return parser


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--lr 0.1`` and friends as ``--set`` strings (values written as JSON, valid TOML)."""
    pairs = [(key, getattr(args, flag)) for flag, (key, _) in SHORTCUTS.items()]
    pairs += [("train.output_dir", args.output_dir), ("train.overwrite", args.overwrite or None)]
    return [f"{key}={json.dumps(value)}" for key, value in pairs if value is not None]


def _train(args: argparse.Namespace) -> int:
    from finetune_kit.config import load_config
    from finetune_kit.overrides import apply_overrides
    from finetune_kit.runner import build_trainer, config_from_checkpoint

    if args.config is not None:
        config = load_config(args.config)
    elif args.resume is not None:
        config = config_from_checkpoint(args.resume)
    else:
        raise ConfigError("finetune-kit train needs --config FILE (or --resume CKPT). "
                          "Try: finetune-kit train --config examples/configs/quickstart.toml")
    config = apply_overrides(config, args.overrides + _flag_overrides(args))
    if config.finetune.recipe is not None:
        from finetune_kit.finetuner import FineTuner

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
    from finetune_kit.evaluate import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, device=args.device)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from finetune_kit.prediction import predict_command

    print(predict_command(args.checkpoint, args.images, args.top_k, args.device))
    return 0


def _export(args: argparse.Namespace) -> int:
    from finetune_kit.exporting import export

    path = export(args.checkpoint, args.output, use_ema=not args.no_ema, overwrite=args.overwrite)
    print(f"Exported to {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    import finetune_kit as fk

    listers: dict[str, Callable[[str], list[str]]] = {
        "datasets": fk.list_datasets, "models": fk.list_models, "losses": fk.list_losses,
        "optimizers": fk.list_optimizers, "schedulers": fk.list_schedulers,
        "metrics": fk.list_metrics,
    }
    if hasattr(fk, "list_strategies"):
        listers["strategies"] = fk.list_strategies
    kind = args.kind if args.kind.endswith("s") else args.kind + "s"
    if kind not in listers:
        from finetune_kit.registry import did_you_mean

        raise ConfigError(f"Unknown kind {args.kind!r}.{did_you_mean(kind, list(listers))} "
                          f"Kinds: {', '.join(listers)}.")
    for name in listers[kind](args.pattern):
        print(name)
    return 0


def _verify_conv(args: argparse.Namespace) -> int:
    from finetune_kit.scratch import run_verify

    text, passed = run_verify(device=args.device, model=args.model)
    print(text)
    return 0 if passed else 1


COMMANDS = {"train": _train, "evaluate": _evaluate, "predict": _predict, "export": _export,
            "list": _list, "verify-conv": _verify_conv}


def _one_line(exc: BaseException) -> str:
    """An error message on one line (multi-line messages, such as lists of places, joined)."""
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        >>> main(["list", "losses", "cross*"])
        cross_entropy
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FinetuneKitError as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"finetune-kit: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("finetune-kit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        teardown()  # under torchrun: leave the process group cleanly, also on errors


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
