"""What an export starts from: a run, a checkpoint, an export, a loaded or a bare model.

:func:`resolve_source` turns any of them into an :class:`ExportSource`: the model in eval mode
on the CPU (LoRA merged, the EMA weights when the checkpoint has them and they are asked for),
the training data's metadata, the model's description and where it came from. A model passed
in is copied, never changed.

Example:
    >>> from finetune_kit.models import create_model
    >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [28, 28],
    ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
    >>> net = create_model("convnet", num_classes=2, in_channels=1).train()
    >>> src = resolve_source(net, meta=meta, use_ema=True)
    >>> src.model is net, src.model.training, net.training, src.info["name"]
    (False, False, True, 'convnet')
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.freezing.peft import merge_lora
from finetune_kit.inference.load import LoadedModel, read_export
from finetune_kit.inference.load import resolve_source as resolve_path
from finetune_kit.inference.stored_model import build_model, checkpoint_weights, stored_description
from finetune_kit.models.info import INFO_ATTR, ModelInfo
from finetune_kit.storage.checkpoint import load_checkpoint
from finetune_kit.storage.metadata import check_data_meta

__all__ = ["ExportSource", "resolve_source"]


@dataclass(frozen=True, eq=False)
class ExportSource:
    """A model ready to export, with what describes it.

    Attributes:
        model: the network, in eval mode on the CPU, LoRA merged.
        meta: the training data's ``DataBundle.meta()``.
        info: its ``ModelInfo.to_dict()`` (None for a module not built by ``create_model``).
        weights: ``"ema"`` or ``"model"``.
        ema: the EMA settings (``decay``, ``num_updates``) when EMA weights were taken.
        origin: ``checkpoint``, ``epoch`` and ``global_step`` of the weights (None if unknown).

    Example:
        >>> from torch import nn
        >>> ExportSource(nn.Identity(), {}, None, "model", None, {}).name
        'Identity'
    """

    model: nn.Module
    meta: dict[str, Any]
    info: dict[str, Any] | None
    weights: str
    ema: dict[str, Any] | None
    origin: dict[str, Any]

    @property
    def name(self) -> str:
        """The registered model name, or the class name of a custom module."""
        return str(self.info["name"]) if self.info else type(self.model).__name__

    @property
    def where(self) -> str:
        """The file the weights came from, or ``"the model"`` for a model passed in."""
        return str(self.origin.get("checkpoint") or "the model")


def _from_module(
    model: nn.Module, meta: Mapping[str, Any] | None
) -> tuple[nn.Module, dict[str, Any], dict[str, Any] | None]:
    """A merged eval-mode CPU copy of ``model``, its meta and its ModelInfo as a dict."""
    if meta is None:
        raise ConfigError(
            "Exporting a model needs meta=: the training data's DataBundle.meta() (class names "
            "and preprocessing). Pass meta=data.meta(), or export a run directory or checkpoint."
        )
    info = getattr(model, INFO_ATTR, None)
    plain = merge_lora(copy.deepcopy(model)).cpu().eval()
    return plain, _complete_meta(meta), info.to_dict() if isinstance(info, ModelInfo) else None


def _complete_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` checked, with the dataset name and class count filled in when the caller left
    them out, so that the export reads back like one made from a checkpoint."""
    if not isinstance(meta, Mapping):
        raise ConfigError(f"meta must be a dict (DataBundle.meta()), got {type(meta).__name__}.")
    filled = dict(meta)
    names = filled.get("class_names")
    if isinstance(names, (list, tuple)):
        filled.setdefault("num_classes", len(names))
    filled.setdefault("name", "")
    return check_data_meta(
        filled,
        "export",
        error=ConfigError,
        entry="meta",
        fix="Pass the DataBundle.meta() of the training data.",
    )


def resolve_source(
    source: str | Path | nn.Module | LoadedModel, *, meta: Mapping[str, Any] | None, use_ema: bool
) -> ExportSource:
    """An :class:`ExportSource` from a path, a :class:`LoadedModel` or a model.

    Args:
        source: a run directory or ``.ckpt`` (final weights; EMA ones when ``use_ema`` and the
            run kept them), an export directory or its ``model.json``, a ``LoadedModel``, or
            a model (``meta`` required).
        meta: the training data's ``DataBundle.meta()``: required with a model, replaces a
            LoadedModel's, refused with a path (a run carries its own).
        use_ema: take a checkpoint's EMA weights when it has them.

    Returns:
        The source, its model copied to the CPU in eval mode with LoRA merged.

    Raises:
        ConfigError: ``meta`` missing for a model, or given with a path; an unsupported source.
        CheckpointError: nothing loadable at the path (see ``load_model``).

    Example:
        >>> resolve_source(42, meta=None, use_ema=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.ConfigError: export takes a run directory, ...
    """
    if isinstance(source, nn.Module):
        model, data_meta, info = _from_module(source, meta)
        return ExportSource(model, data_meta, info, "model", None, {"checkpoint": None})
    if isinstance(source, LoadedModel):
        origin = {"checkpoint": str(source.source)}
        model, data_meta, _ = _from_module(source.model, source.meta if meta is None else meta)
        return ExportSource(model, data_meta, source.info.to_dict(), source.weights, None, origin)
    if not isinstance(source, (str, Path)):
        raise ConfigError(
            "export takes a run directory, a .ckpt checkpoint, an export directory, a "
            f"LoadedModel or a model; got a {type(source).__name__}."
        )
    if meta is not None:
        raise ConfigError(f"{source} carries its own data metadata; do not pass meta= with a path.")
    kind, path = resolve_path(source)
    if kind == "export":
        document, state, weights_path = read_export(path)
        model = build_model(document["model_info"], state, None, weights_path).eval()
        recorded = document.get("source")
        origin = dict(recorded) if isinstance(recorded, dict) else {}
        origin.setdefault("checkpoint", str(path))
        weights = str(document.get("weights", "model"))
        return ExportSource(
            model, document["data_meta"], document["model_info"], weights, document.get("ema"), origin
        )
    state = load_checkpoint(path)
    info, data_meta = stored_description(state, path)
    weights, which, ema = checkpoint_weights(state, use_ema)
    model = build_model(info, weights, state.get("freezing"), path).eval()
    position = state.get("position", {})
    origin = {
        "checkpoint": str(path),
        "epoch": position.get("epoch"),
        "global_step": position.get("global_step"),
    }
    return ExportSource(model, data_meta, info, which, ema, origin)
