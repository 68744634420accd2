"""The argument parser of the ``finetune-kit`` command: subcommands and their flags.

Flags are kebab-case and named like the config keys they set (``--batch-size`` is
``loader.batch_size``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["SHORTCUTS", "build_parser"]

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
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.lr=0.1 (repeatable)",
    )
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
    parser = argparse.ArgumentParser(
        prog="finetune-kit", description="Train, fine-tune, evaluate and deploy image classifiers."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_predict, _add_export, _add_list, _add_verify):
        add(sub)
    return parser
