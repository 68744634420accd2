"""Export trained weights for inference, and load them back: :func:`export`, :func:`load_model`.

An export is a pair of files: ``model.safetensors`` (the weights, in the safetensors format,
which holds tensors only and cannot run code) and ``model.json``, which says how to rebuild
the architecture (the model's ``ModelInfo``), the class names, and how inputs were preprocessed
(channels, stored image size, model input size, mean and std: the training data's
``DataBundle.meta()``). When the checkpoint holds EMA weights, those are exported by default,
as they are the ones evaluation used. LoRA layers are merged into their base weights, so the
export holds the plain architecture.

:func:`load_model` reads an export, a ``.ckpt`` checkpoint or a run directory and returns a
:class:`LoadedModel`: the model in eval mode plus the data metadata that
:func:`finetune_kit.prediction.predict` needs to preprocess new images.

Example:
    >>> import tempfile, finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16,
    ...                           train_size=32, test_size=8)
    >>> model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    >>> run = tempfile.mkdtemp() + "/run"
    >>> _ = fk.Trainer(model, data, epochs=1, batch_size=16, progress=False, output_dir=run).fit()
    >>> out = export(run, tempfile.mkdtemp() + "/exported")
    >>> sorted(p.name for p in out.iterdir())
    ['model.json', 'model.safetensors']
    >>> loaded = load_model(out)
    >>> loaded.class_names, loaded.model.training
    (['fake_0', 'fake_1', 'fake_2'], False)
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

from finetune_kit._version import __version__
from finetune_kit.atomic import atomic_write_bytes
from finetune_kit.checkpoint import find_checkpoint, load_checkpoint
from finetune_kit.errors import CheckpointError, OutputDirError
from finetune_kit.freezing import apply_strategy
from finetune_kit.models import ModelInfo, create_model, model_info
from finetune_kit.models.info import update_model_info
from finetune_kit.peft import merge_lora
from finetune_kit.runtime import resolve_device

__all__ = ["EXPORT_FORMAT", "INFO_FILE", "WEIGHTS_FILE", "LoadedModel", "export", "load_model"]

EXPORT_FORMAT = "finetune_kit.export"
EXPORT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
INFO_FILE = "model.json"
PREPROCESSING = ("uint8 image resized to image_size (antialiased bilinear), then x / 255, "
                 "then (x - mean) / std per channel, then, when input_size differs from "
                 "image_size, shorter side resized to input_size and centre-cropped")


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


# ------------------------------------------------------------------ build
def _has_lora(state: dict[str, torch.Tensor]) -> bool:
    return any(".lora_a." in key for key in state)


def _build_model(info: dict[str, Any], state: dict[str, torch.Tensor],
                 freezing: dict[str, Any] | None, where: Path) -> nn.Module:
    """``create_model`` from the stored info, then the weights (LoRA re-applied and merged)."""
    model = create_model(info["name"], **info["build_kwargs"])
    if _has_lora(state):
        if not freezing or freezing.get("strategy") != "lora":
            raise CheckpointError(f"{where} holds LoRA weights but no LoRA freezing state; it "
                                  "cannot be rebuilt. Re-save it with finetune_kit.")
        apply_strategy(model, "lora", **freezing.get("options", {}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The weights in {where} do not fit the {info['name']!r} model they claim to be: "
            f"{str(exc).splitlines()[0]}. The file may have been edited or mixed up with another."
        ) from None
    return merge_lora(model)


def _checkpoint_weights(state: dict[str, Any], use_ema: bool
                        ) -> tuple[dict[str, torch.Tensor], str, dict[str, Any] | None]:
    """(state dict, ``"ema"``/``"model"``, EMA settings) of a checkpoint."""
    ema = state.get("ema")
    if use_ema and ema is not None:
        if not isinstance(ema, dict) or "module" not in ema:
            raise CheckpointError("The checkpoint's EMA entry is malformed (no 'module' weights). "
                                  "Pass use_ema=False to use the raw weights.")
        settings = {"decay": ema.get("decay"), "num_updates": ema.get("num_updates")}
        return ema["module"], "ema", settings
    return state["model"], "model", None


def _require(state: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's ``model_info`` and ``data_meta``, or a clear error."""
    missing = [key for key in ("model_info", "data_meta") if not state.get(key)]
    if missing:
        raise CheckpointError(
            f"{path} has no {' or '.join(missing)}; it was not written by Trainer.save_checkpoint "
            "of this finetune_kit version. Export from a checkpoint of a finetune_kit run."
        )
    return state["model_info"], state["data_meta"]


# ----------------------------------------------------------------- export
def _targets(path: Path, overwrite: bool) -> tuple[Path, Path]:
    """The (weights, json) files to write for ``path``, checked against overwriting."""
    if path.suffix == ".safetensors":
        weights, info = path, path.with_suffix(".json")
    elif path.is_file():
        raise OutputDirError(f"Export path {path} is an existing file; pass a directory (it will "
                             f"hold {WEIGHTS_FILE} and {INFO_FILE}) or a NAME.safetensors path.")
    else:
        weights, info = path / WEIGHTS_FILE, path / INFO_FILE
    existing = [str(p) for p in (weights, info) if p.exists()]
    if existing and not overwrite:
        raise OutputDirError(
            f"Refusing to overwrite {', '.join(existing)}; nothing was written. Choose another "
            "path, or pass overwrite=True (--overwrite) to replace these files."
        )
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"Cannot create {weights.parent}: {exc.strerror or exc}. Choose "
                             "another path.") from None
    return weights, info


def export(source: str | Path, path: str | Path, *, use_ema: bool = True,
           overwrite: bool = False) -> Path:
    """Write a checkpoint's final weights as safetensors plus a JSON description.

    Args:
        source: a ``.ckpt`` checkpoint or a run directory (its ``last.ckpt``, else
            ``best.ckpt``: the final weights).
        path: a directory that receives ``model.safetensors`` and ``model.json`` (created if
            needed), or a ``NAME.safetensors`` path (the JSON goes beside it as ``NAME.json``).
        use_ema: export the EMA weights when the checkpoint has them (``model.json`` records
            which weights were exported under ``"weights"``).
        overwrite: replace existing export files at ``path`` (other files are never touched).

    Returns:
        The directory of the export (``path``), or the ``.safetensors`` file when one was named.

    Raises:
        CheckpointError: the checkpoint is missing, corrupted, unsafe (pickled code is refused
            unread) or its weights do not fit its own model description.
        OutputDirError: the export files exist and ``overwrite`` is False, or ``path`` is a file.

    Example:
        >>> import tempfile, pathlib
        >>> from finetune_kit.checkpoint import save_checkpoint
        >>> from finetune_kit.data import create_datasets
        >>> from finetune_kit.models import create_model, model_info
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> data = create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                        train_size=8, test_size=2)
        >>> net = create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> save_checkpoint({"model": net.state_dict(), "model_info": model_info(net).to_dict(),
        ...                  "data_meta": data.meta()}, tmp / "last.ckpt")
        >>> export(tmp / "last.ckpt", tmp / "out").name
        'out'
        >>> export(tmp / "last.ckpt", tmp / "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        finetune_kit.errors.OutputDirError: Refusing to overwrite ...
    """
    ckpt_path = find_checkpoint(source)
    state = load_checkpoint(ckpt_path)
    info, meta = _require(state, ckpt_path)
    weights, kind, ema = _checkpoint_weights(state, use_ema)
    model = _build_model(info, weights, state.get("freezing"), ckpt_path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    blob = safetensors.torch.save(tensors, metadata={"format": "pt"})
    weights_path, info_path = _targets(Path(path), overwrite)
    position = state.get("position", {})
    document = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "finetune_kit_version": __version__,
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "weights": kind,
        "ema": ema,
        "class_names": list(meta["class_names"]),
        "preprocessing": {key: meta[key] for key in
                          ("in_channels", "image_size", "input_size", "mean", "std")}
        | {"steps": PREPROCESSING},
        "model_info": info,
        "data_meta": meta,
        "source": {"checkpoint": str(ckpt_path), "epoch": position.get("epoch"),
                   "global_step": position.get("global_step")},
    }
    text = json.dumps(document, indent=2) + "\n"
    try:
        atomic_write_bytes(weights_path, lambda handle: handle.write(blob))
        atomic_write_bytes(info_path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as exc:
        raise OutputDirError(f"Could not write the export to {weights_path.parent}: "
                             f"{exc.strerror or exc}. Free some disk space or choose another "
                             "path.") from None
    return weights_path if Path(path).suffix == ".safetensors" else Path(path)


# ------------------------------------------------------------------- load
def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Cannot read export description {path}: {exc}.") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path} is not a finetune_kit export (no \"format\": "
                              f"\"{EXPORT_FORMAT}\"). Create exports with finetune_kit.export.")
    if int(document.get("format_version", 0)) > EXPORT_VERSION:
        raise CheckpointError(f"{path} was written by a newer finetune_kit (export format "
                              f"{document['format_version']}); upgrade finetune_kit to load it.")
    missing = [k for k in ("weights_file", "model_info", "data_meta") if k not in document]
    name = document.get("weights_file", "")
    if missing or not isinstance(name, str) or Path(name).name != name or not name:
        raise CheckpointError(f"{path} is incomplete or malformed (missing or bad: "
                              f"{missing or ['weights_file']}). Export the checkpoint again.")
    return document


def _read_export(json_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
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


def _resolve_source(source: str | Path) -> tuple[str, Path]:
    """``("export", json path)`` or ``("checkpoint", ckpt path)``."""
    path = Path(source)
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
        raise CheckpointError(f"Nothing to load at {path}: expected an export directory "
                              f"({INFO_FILE} + {WEIGHTS_FILE}), a .ckpt file or a run directory.")
    return "checkpoint", find_checkpoint(path)


def load_model(source: str | Path, *, device: str | torch.device = "cpu",
               use_ema: bool = True) -> LoadedModel:
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
        >>> from finetune_kit.checkpoint import save_checkpoint
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
    kind, path = _resolve_source(source)
    if kind == "export":
        document, state, weights_path = _read_export(path)
        info, meta = document["model_info"], document["data_meta"]
        model = _build_model(info, state, None, weights_path)
        which = str(document.get("weights", "model"))
    else:
        checkpoint = load_checkpoint(path)
        info, meta = _require(checkpoint, path)
        state, which, _ = _checkpoint_weights(checkpoint, use_ema)
        model = _build_model(info, state, checkpoint.get("freezing"), path)
    update_model_info(model, class_names=list(meta["class_names"]), weights=str(path),
                      mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    model.to(target).eval()
    return LoadedModel(model=model, meta=dict(meta), info=model_info(model), weights=which,
                       source=path)
