"""The safetensors export: ``model.safetensors`` plus ``model.json``, rebuilt by :func:`load_model`.

An export is a pair of files: ``model.safetensors`` (the weights, in the safetensors format,
which holds tensors only and cannot run code) and ``model.json``, which says how to rebuild
the architecture (the model's ``ModelInfo``), the class names, and how inputs were preprocessed
(channels, stored image size, model input size, mean and std: the training data's
``DataBundle.meta()``). When the checkpoint holds EMA weights, those are exported by default,
as they are the ones evaluation used. LoRA layers are merged into their base weights, so the
export holds the plain architecture.

Example:
    >>> from finetune_kit.models import create_model
    >>> from finetune_kit.inference.export_source import resolve_source
    >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [28, 28],
    ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
    >>> src = resolve_source(create_model("convnet", num_classes=2, in_channels=1), meta=meta,
    ...                      use_ema=True)
    >>> [(p.name, len(blob) > 0) for p, blob in safetensors_files(src, Path("out/model.safetensors"))]
    [('model.safetensors', True), ('model.json', True)]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import safetensors.torch

from finetune_kit._version import __version__
from finetune_kit.errors import ConfigError
from finetune_kit.inference.export_source import ExportSource
from finetune_kit.inference.stored_model import EXPORT_FORMAT, EXPORT_VERSION, PREPROCESSING

__all__ = ["safetensors_files"]

_PREPROCESSING_KEYS = ("in_channels", "image_size", "input_size", "mean", "std")


def _sorted_header(blob: bytes) -> bytes:
    """The safetensors bytes with their JSON header's keys sorted, so an export is reproducible
    byte for byte (safetensors writes its metadata in a random order)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # cannot happen (same keys and values); keep safetensors' own order
        return blob
    return blob[:8] + text.ljust(size) + blob[8 + size :]


def safetensors_files(src: ExportSource, weights_path: Path) -> list[tuple[Path, bytes]]:
    """The weights and JSON description of an export, as ``(path, bytes)`` to write.

    Args:
        src: the model to export.
        weights_path: where the weights go; the JSON goes beside it with the suffix ``.json``.

    Returns:
        ``[(weights_path, safetensors bytes), (json path, UTF-8 JSON)]``.

    Raises:
        ConfigError: the model has no ModelInfo (it could not be rebuilt from the export).

    Example:
        >>> from torch import nn
        >>> src = ExportSource(nn.Linear(2, 2), {}, None, "model", None, {})
        >>> safetensors_files(src, Path("m.safetensors"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.ConfigError: A safetensors export records how to rebuild ...
    """
    if src.info is None:
        raise ConfigError(
            f"A safetensors export records how to rebuild the model, but this {src.name} was not "
            "built by create_model (it has no ModelInfo). Export it with format='onnx' or "
            "'torch_export', or build it with finetune_kit.create_model."
        )
    meta = src.meta
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in src.model.state_dict().items()}
    blob = _sorted_header(
        safetensors.torch.save(tensors, metadata={"format": "pt", "finetune_kit": EXPORT_FORMAT})
    )
    document = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "finetune_kit_version": __version__,
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "weights": src.weights,
        "ema": src.ema,
        "class_names": list(meta["class_names"]),
        "preprocessing": {key: meta[key] for key in _PREPROCESSING_KEYS} | {"steps": PREPROCESSING},
        "model_info": src.info,
        "data_meta": meta,
        "source": {
            "checkpoint": src.origin.get("checkpoint"),
            "epoch": src.origin.get("epoch"),
            "global_step": src.origin.get("global_step"),
        },
    }
    text = json.dumps(document, indent=2) + "\n"
    return [(weights_path, blob), (weights_path.with_suffix(".json"), text.encode("utf-8"))]
