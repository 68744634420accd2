"""Load a trained model for inference: :func:`load_model` reads an export, a checkpoint or a run.

It returns a :class:`LoadedModel`: the model in eval mode plus the data metadata that
:func:`~finetune_kit.inference.predict.predict` needs to preprocess new images. Weights are read
with safetensors or ``torch.load(weights_only=True)``: nothing in the files is ever executed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from finetune_kit.errors import CheckpointError
from finetune_kit.inference.stored_model import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    INFO_FILE,
    WEIGHTS_FILE,
    build_model,
    checkpoint_weights,
    stored_description,
)
from finetune_kit.models import ModelInfo, model_info
from finetune_kit.models.info import update_model_info
from finetune_kit.runtime import resolve_device
from finetune_kit.storage.checkpoint import find_checkpoint, load_checkpoint
from finetune_kit.storage.metadata import check_data_meta, check_model_info, check_stored_model
from finetune_kit.storage.paths import user_path

__all__ = ["LoadedModel", "load_model"]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model rebuilt for inference, with what is needed to feed it.

    Attributes:
        model: the network, in eval mode, on the requested device.
        meta: the training data's ``DataBundle.meta()`` (``class_names``, ``in_channels``,
            ``image_size``, ``input_size``, ``mean``, ``std`` ...).
        info: the model's :class:`~finetune_kit.models.ModelInfo`.
        weights: ``"ema"`` or ``"model"``: which weights were loaded.
        source: the file the weights came from.

    Example:
        >>> from torch import nn
        >>> meta = {"class_names": ["a", "b"]}
        >>> LoadedModel(nn.Linear(2, 2), meta, None, "model", Path("m.json")).class_names
        ['a', 'b']
    """

    model: nn.Module
    meta: dict[str, Any]
    info: ModelInfo
    weights: str
    source: Path

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return list(self.meta["class_names"])


MAX_DOCUMENT_BYTES = 256 * 2**20
"""The largest ``model.json`` read (a million class names take about 40 MiB)."""
_FIX = "The export is corrupted or was edited; export the checkpoint again."


def _read_document(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise CheckpointError(
                f"{path} is {path.stat().st_size // 2**20} MiB, far more than an export "
                f"description holds (at most {MAX_DOCUMENT_BYTES // 2**20} MiB). {_FIX}"
            )
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise CheckpointError(f"Cannot read export description {path}: {reason}. {_FIX}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise CheckpointError(
            f'{path} is not a finetune_kit export (no "format": '
            f'"{EXPORT_FORMAT}"). Create exports with finetune_kit.export.'
        )
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version must be an integer >= 1, got {version!r}. {_FIX}")
    if version > EXPORT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer finetune_kit (export format "
            f"{version}); upgrade finetune_kit to load it."
        )
    missing = [k for k in ("weights_file", "model_info", "data_meta") if k not in document]
    name = document.get("weights_file", "")
    if missing or not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise CheckpointError(
            f"{path} is incomplete or malformed (missing or bad: "
            f"{missing or ['weights_file']}). Export the checkpoint again."
        )
    for key, allowed in (("weights_sha256", (str, type(None))), ("weights", (str, type(None)))):
        if not isinstance(document.get(key), allowed):
            raise CheckpointError(f"{path}: {key} must be a text, got {document[key]!r}. {_FIX}")
    info = check_model_info(document["model_info"], str(path), fix=_FIX)
    meta = check_data_meta(document["data_meta"], str(path), fix=_FIX)
    check_stored_model(info, meta, str(path), fix=_FIX)
    return document


def read_export(json_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    document = _read_document(json_path)
    weights_path = json_path.parent / document["weights_file"]
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"Cannot read {weights_path} named by {json_path}: {exc.strerror or exc}. Keep the "
            "two exported files together."
        ) from None
    expected = document.get("weights_sha256")
    if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
        raise CheckpointError(
            f"{weights_path} does not match {json_path} (SHA-256 differs): the files are from "
            "different exports, or one was modified. Export again."
        )
    try:
        state = safetensors.torch.load(blob)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is not a valid safetensors file: {exc}.") from None
    return document, state, weights_path


def resolve_source(source: str | Path) -> tuple[str, Path]:
    """``("export", json path)`` or ``("checkpoint", ckpt path)``."""
    path = user_path(source, "source")
    if path.is_dir() and (path / INFO_FILE).is_file():
        return "export", path / INFO_FILE
    if path.suffix == ".json" and path.is_file():
        return "export", path
    if path.suffix == ".safetensors":
        if path.is_file() and path.with_suffix(".json").is_file():
            return "export", path.with_suffix(".json")
        raise CheckpointError(
            f"{path} has no {path.with_suffix('.json').name} beside it, so its architecture and "
            "preprocessing are unknown. Load plain weights with create_model(..., weights=PATH)."
        )
    if not path.exists():
        raise CheckpointError(
            f"Nothing to load at {path}: expected an export directory "
            f"({INFO_FILE} + {WEIGHTS_FILE}), a .ckpt file or a run directory."
        )
    return "checkpoint", find_checkpoint(path)


def load_model(
    source: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True
) -> LoadedModel:
    """Rebuild a trained model for inference from an export, a checkpoint or a run directory.

    The architecture is rebuilt with ``create_model(info["name"], **info["build_kwargs"])``
    (nothing is downloaded), the weights are read with safetensors or
    ``torch.load(weights_only=True)``, and the model is moved to ``device`` in eval mode. Its
    ``ModelInfo`` gets the class names and normalisation of the training data.

    Args:
        source: an export directory, its ``model.json`` or ``.safetensors`` file, a ``.ckpt``
            checkpoint, or a run directory.
        device: where to put the model (``"cpu"``, ``"cuda"``, ``"auto"`` ...).
        use_ema: for checkpoints, load the EMA weights when there are some (an export holds
            one set of weights, the ones named by its ``"weights"`` entry).

    Returns:
        A :class:`LoadedModel` (``.model``, ``.meta``, ``.class_names`` ...).

    Raises:
        CheckpointError: nothing loadable at ``source``, an unsafe or corrupted file, files of
            two different exports, or weights that do not fit.
        UnknownNameError: the model name is not registered in this process (register custom
            models before loading).
        DeviceError: ``device`` is not available.

    Example:
        >>> import tempfile, pathlib
        >>> from finetune_kit.storage.checkpoint import save_checkpoint
        >>> from finetune_kit.data import create_datasets
        >>> from finetune_kit.models import create_model, model_info
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.ckpt"
        >>> data = create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                        train_size=8, test_size=2)
        >>> net = create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> save_checkpoint({"model": net.state_dict(), "model_info": model_info(net).to_dict(),
        ...                  "data_meta": data.meta()}, path)
        >>> loaded = load_model(path)
        >>> loaded.class_names, loaded.weights, loaded.model.training
        (['fake_0', 'fake_1'], 'model', False)
    """
    target = resolve_device(device)
    kind, path = resolve_source(source)
    if kind == "export":
        document, state, weights_path = read_export(path)
        info, meta = document["model_info"], document["data_meta"]
        model = build_model(info, state, None, weights_path)
        which = str(document.get("weights", "model"))
    else:
        checkpoint = load_checkpoint(path)
        info, meta = stored_description(checkpoint, path)
        state, which, _ = checkpoint_weights(checkpoint, use_ema)
        model = build_model(info, state, checkpoint.get("freezing"), path)
    update_model_info(
        model,
        class_names=list(meta["class_names"]),
        weights=str(path),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
    )
    model.to(target).eval()
    return LoadedModel(model=model, meta=dict(meta), info=model_info(model), weights=which, source=path)
