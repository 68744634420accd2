"""What an export or a checkpoint stores of a model, and how the model is rebuilt from it.

The architecture is rebuilt with ``create_model(info["name"], **info["build_kwargs"])`` from the
stored :class:`~finetune_kit.models.ModelInfo`; LoRA weights are re-applied and merged, so the
result is always the plain architecture.

Example:
    >>> EXPORT_FORMAT, WEIGHTS_FILE, INFO_FILE
    ('finetune_kit.export', 'model.safetensors', 'model.json')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetune_kit.errors import CheckpointError, ConfigError, UnknownNameError
from finetune_kit.freezing import apply_strategy
from finetune_kit.freezing.peft import merge_lora
from finetune_kit.models import create_model
from finetune_kit.storage.metadata import check_data_meta, check_model_info, check_stored_model

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "INFO_FILE",
    "PREPROCESSING",
    "WEIGHTS_FILE",
    "build_model",
    "checkpoint_weights",
    "stored_description",
]

EXPORT_FORMAT = "finetune_kit.export"
EXPORT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
INFO_FILE = "model.json"
PREPROCESSING = (
    "uint8 image resized to image_size (antialiased bilinear), then x / 255, "
    "then (x - mean) / std per channel, then, when input_size differs from "
    "image_size, shorter side resized to input_size and centre-cropped"
)


def _has_lora(state: dict[str, torch.Tensor]) -> bool:
    return any(".lora_a." in key for key in state)


def build_model(
    info: dict[str, Any], state: dict[str, torch.Tensor], freezing: dict[str, Any] | None, where: Path
) -> nn.Module:
    """``create_model`` from the stored info, then the weights (LoRA re-applied and merged).

    ``info`` must have passed :func:`~finetune_kit.storage.metadata.check_model_info`. The
    weights are checked against the description before the model is built (the head's class
    count) and against the built model before they are loaded (names, shapes, finite values),
    so a file that lies about its model allocates nothing large and loads nothing half.

    Raises:
        CheckpointError: the weights do not fit the description, or the description cannot
            be rebuilt (unknown option, LoRA weights without LoRA settings).
        UnknownNameError: the model name is not registered in this process.
    """
    lora = _has_lora(state)
    if lora and (not freezing or freezing.get("strategy") != "lora"):
        raise CheckpointError(
            f"{where} holds LoRA weights but no LoRA freezing state; it "
            "cannot be rebuilt. Re-save it with finetune_kit."
        )
    try:
        _check_skeleton(info, state, where, lora)
        model = create_model(info["name"], **info["build_kwargs"])
        if lora:
            apply_strategy(model, "lora", **freezing.get("options", {}))
    except UnknownNameError:
        raise
    except ConfigError as exc:
        raise CheckpointError(
            f"{where}: its stored model description cannot be rebuilt ({exc}) {_FIX}"
        ) from None
    _raise_on_mismatch(model.state_dict(), state, info, where)
    model.load_state_dict(state, strict=True)
    return merge_lora(model)


_FIX = "The file is corrupted or was edited; use another copy (or export/train again)."


def _check_skeleton(info: dict[str, Any], state: dict[str, torch.Tensor], where: Path, lora: bool) -> None:
    """Compare the weights with the described architecture before building it for real.

    The architecture is first built on PyTorch's ``meta`` device, which allocates nothing, so a
    file that claims a billion classes or a huge input size costs nothing to refuse.
    """
    try:
        with torch.device("meta"):
            skeleton = create_model(info["name"], **info["build_kwargs"]).state_dict()
    except (RuntimeError, NotImplementedError):
        # A user's own builder that cannot run on the meta device: its code is the user's, only
        # the numbers in the file are untrusted, and the comparison after the build still applies.
        return
    if not lora:  # LoRA weights are named differently until the adapters are applied
        _raise_on_mismatch(skeleton, state, info, where)
        return
    needed = sum(t.numel() for t in skeleton.values())
    held = sum(t.numel() for t in state.values() if torch.is_tensor(t))
    if needed > held:
        raise CheckpointError(
            f"{where}: its model description ({info['name']!r} with "
            f"{info['num_classes']} classes, {info['in_channels']} channels) needs {needed:,} "
            f"weights but the file holds {held:,}. {_FIX}"
        )


def _raise_on_mismatch(
    expected: dict[str, torch.Tensor], state: dict[str, Any], info: dict[str, Any], where: Path
) -> None:
    problem = _mismatch(expected, state)
    if problem:
        raise CheckpointError(
            f"The weights in {where} do not fit the {info['name']!r} model they claim to be: "
            f"{problem}. The file may have been edited or mixed up with another."
        )


def _mismatch(expected: dict[str, torch.Tensor], state: dict[str, Any]) -> str:
    """What keeps ``state`` from loading into a model with ``expected`` tensors ('' if nothing)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    for key, want in expected.items():
        have = state.get(key)
        if key not in state:
            continue
        if not torch.is_tensor(have):
            problems.append(f"{key} is a {type(have).__name__}, not a tensor")
        elif have.shape != want.shape:
            shapes = f"{tuple(have.shape)} in the file but {tuple(want.shape)} in the model"
            problems.append(f"{key} has shape {shapes}")
        elif have.is_complex() or have.is_floating_point() != want.is_floating_point():
            problems.append(f"{key} is {have.dtype} in the file but {want.dtype} in the model")
        elif have.is_floating_point() and not bool(torch.isfinite(have).all()):
            problems.append(f"{key} holds NaN or infinite values")
        if len(problems) >= 3:
            break
    return "; ".join(problems)


def _some(names: list[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def checkpoint_weights(
    state: dict[str, Any], use_ema: bool
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any] | None]:
    """(state dict, ``"ema"``/``"model"``, EMA settings) of a checkpoint."""
    ema = state.get("ema")
    if use_ema and ema is not None:
        if not isinstance(ema, dict) or "module" not in ema:
            raise CheckpointError(
                "The checkpoint's EMA entry is malformed (no 'module' weights). "
                "Pass use_ema=False to use the raw weights."
            )
        settings = {"decay": ema.get("decay"), "num_updates": ema.get("num_updates")}
        return ema["module"], "ema", settings
    return state["model"], "model", None


def stored_description(state: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's ``model_info`` and ``data_meta``, checked complete and consistent.

    Raises:
        CheckpointError: an entry is missing, malformed, or the two disagree; or the
            checkpoint holds a custom module that cannot be rebuilt.
    """
    if not state.get("model_info") and state.get("model_class") and state.get("data_meta"):
        raise CheckpointError(
            f"{path} holds a custom model ({state['model_class']}) that finetune_kit cannot "
            "rebuild from the file. Build the model in Python and load the weights with "
            "fk.load_weights(model, CHECKPOINT); exports and CLI evaluation need a model from "
            "fk.create_model (or one registered with fk.register_model)."
        )
    missing = [key for key in ("model_info", "data_meta") if not state.get(key)]
    if missing:
        raise CheckpointError(
            f"{path} has no {' or '.join(missing)}; it was not written by Trainer.save_checkpoint "
            "of this finetune_kit version. Export from a checkpoint of a finetune_kit run."
        )
    info = check_model_info(state["model_info"], str(path))
    meta = check_data_meta(state["data_meta"], str(path))
    check_stored_model(info, meta, str(path))
    return info, meta
