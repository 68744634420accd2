"""The names of the built-in parts, for ``finetune-kit list`` without importing PyTorch.

The registries are filled by importing the modules that define the parts, which import torch
(seconds). The command line never loads user code, so the names it can list are the built-in
ones: this manifest holds them. A test checks it against the live registries; regenerate it
with ``python -m finetune_kit.cli.builtin_names`` after adding a built-in part.
"""

from __future__ import annotations

import importlib

__all__ = ["BUILTIN_NAMES", "LISTERS", "live_names"]

# kind -> (module, function) that lists the registered names of that kind.
LISTERS = {
    "datasets": ("finetune_kit.data", "list_datasets"),
    "models": ("finetune_kit.models", "list_models"),
    "losses": ("finetune_kit.optim", "list_losses"),
    "optimizers": ("finetune_kit.optim", "list_optimizers"),
    "schedulers": ("finetune_kit.optim", "list_schedulers"),
    "metrics": ("finetune_kit.metrics", "list_metrics"),
    "strategies": ("finetune_kit.freezing", "list_strategies"),
    "recipes": ("finetune_kit.training", "list_recipes"),
}

BUILTIN_NAMES: dict[str, tuple[str, ...]] = {
    "datasets": (
        "cifar10",
        "cifar100",
        "fake",
        "fashion_mnist",
        "image_folder",
        "mnist",
        "tensors",
    ),
    "models": (
        "bn_convnet",
        "convnet",
        "efficientnet_b0",
        "lenet",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        "resnet101",
        "resnet152",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet9",
        "vgg11_bn",
        "wide_resnet50_2",
    ),
    "losses": (
        "cross_entropy",
        "focal",
        "soft_target_cross_entropy",
    ),
    "optimizers": (
        "adadelta",
        "adafactor",
        "adagrad",
        "adam",
        "adamax",
        "adamw",
        "asgd",
        "nadam",
        "radam",
        "rmsprop",
        "rprop",
        "sgd",
    ),
    "schedulers": (
        "constant",
        "cosine",
        "multistep",
        "onecycle",
        "plateau",
        "step",
    ),
    "metrics": (
        "accuracy",
        "confusion_matrix",
        "f1",
        "loss",
        "precision",
        "recall",
        "top_k_accuracy",
    ),
    "strategies": (
        "bitfit",
        "discriminative_lr",
        "freeze_first",
        "freeze_until",
        "full",
        "gradual_unfreeze",
        "linear_probe",
        "lora",
        "train_only",
    ),
    "recipes": (
        "gradual",
        "linear_probe",
        "two_stage",
    ),
}


def live_names() -> dict[str, tuple[str, ...]]:
    """The names the registries hold now (imports the library and torch)."""
    return {
        kind: tuple(getattr(importlib.import_module(module), function)("*"))
        for kind, (module, function) in LISTERS.items()
    }


if __name__ == "__main__":  # pragma: no cover - regenerates the manifest above
    from pathlib import Path

    path = Path(__file__)
    text = path.read_text(encoding="utf-8")
    start = text.index("BUILTIN_NAMES: dict")
    end = text.index("}\n", start) + 2
    lines = ["BUILTIN_NAMES: dict[str, tuple[str, ...]] = {"]
    for kind, names in live_names().items():
        lines.append(f'    "{kind}": (')
        lines += [f'        "{name}",' for name in names]
        lines.append("    ),")
    path.write_text(text[:start] + "\n".join(lines) + "\n}\n" + text[end:], encoding="utf-8")
