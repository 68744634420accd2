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

from finetune_kit.errors import CheckpointError
from finetune_kit.freezing import apply_strategy
from finetune_kit.freezing.peft import merge_lora
from finetune_kit.models import create_model

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
    """``create_model`` from the stored info, then the weights (LoRA re-applied and merged)."""
    model = create_model(info["name"], **info["build_kwargs"])
    if _has_lora(state):
        if not freezing or freezing.get("strategy") != "lora":
            raise CheckpointError(
                f"{where} holds LoRA weights but no LoRA freezing state; it "
                "cannot be rebuilt. Re-save it with finetune_kit."
            )
        apply_strategy(model, "lora", **freezing.get("options", {}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The weights in {where} do not fit the {info['name']!r} model they claim to be: "
            f"{str(exc).splitlines()[0]}. The file may have been edited or mixed up with another."
        ) from None
    return merge_lora(model)


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
    """The checkpoint's ``model_info`` and ``data_meta``, or a clear error."""
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
    return state["model_info"], state["data_meta"]
