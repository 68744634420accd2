"""Export trained weights for inference: :func:`export` writes safetensors plus a JSON description.

An export is a pair of files: ``model.safetensors`` (the weights, in the safetensors format,
which holds tensors only and cannot run code) and ``model.json``, which says how to rebuild
the architecture (the model's ``ModelInfo``), the class names, and how inputs were preprocessed
(channels, stored image size, model input size, mean and std: the training data's
``DataBundle.meta()``). When the checkpoint holds EMA weights, those are exported by default,
as they are the ones evaluation used. LoRA layers are merged into their base weights, so the
export holds the plain architecture.

:func:`load_model` reads an export, a ``.ckpt`` checkpoint or a run directory and returns a
:class:`LoadedModel`: the model in eval mode plus the data metadata that
:func:`finetune_kit.inference.predict.predict` needs to preprocess new images.

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
    >>> from finetune_kit.inference.load import load_model
    >>> loaded = load_model(out)
    >>> loaded.class_names, loaded.model.training
    (['fake_0', 'fake_1', 'fake_2'], False)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import safetensors
import safetensors.torch
from safetensors import SafetensorError

from finetune_kit._version import __version__
from finetune_kit.errors import OutputDirError
from finetune_kit.inference.stored_model import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    INFO_FILE,
    PREPROCESSING,
    WEIGHTS_FILE,
    build_model,
    checkpoint_weights,
    stored_description,
)
from finetune_kit.storage.atomic import atomic_write_group
from finetune_kit.storage.checkpoint import find_checkpoint, load_checkpoint
from finetune_kit.storage.paths import user_path

__all__ = ["export"]


def _targets(path: Path, overwrite: bool) -> tuple[Path, Path]:
    """The (weights, json) files to write for ``path``, checked against overwriting."""
    if path.suffix == ".safetensors":
        weights, info = path, path.with_suffix(".json")
    elif path.is_file():
        raise OutputDirError(
            f"Export path {path} is an existing file; pass a directory (it will "
            f"hold {WEIGHTS_FILE} and {INFO_FILE}) or a NAME.safetensors path."
        )
    else:
        weights, info = path / WEIGHTS_FILE, path / INFO_FILE
    existing = [p for p in (weights, info) if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise OutputDirError(
            f"Refusing to overwrite {', '.join(map(str, existing))}; nothing was written. Choose "
            "another path, or pass overwrite=True (--overwrite) to replace these files."
        )
    for found in existing:  # --overwrite replaces an export, never a file of the user's
        if not _is_export_file(found, weights, info):
            raise OutputDirError(
                f"Refusing to replace {found}: it is not part of a finetune_kit export, so "
                "--overwrite does not apply to it; nothing was written. Move it away or "
                "choose another export path."
            )
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(
            f"Cannot create {weights.parent}: {exc.strerror or exc}. Choose another path."
        ) from None
    return weights, info


def _sorted_header(blob: bytes) -> bytes:
    """The safetensors bytes with their JSON header's keys sorted, so an export is reproducible
    byte for byte (safetensors writes its metadata in a random order)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # cannot happen (same keys and values); keep safetensors' own order
        return blob
    return blob[:8] + text.ljust(size) + blob[8 + size :]


def _export_document(info: Path) -> dict | None:
    """The export description at ``info``, or None when the file is not one."""
    try:
        if info.is_symlink() or not info.is_file() or info.stat().st_size > 256 * 2**20:
            return None
        document = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) and document.get("format") == EXPORT_FORMAT else None


def _is_export_file(found: Path, weights: Path, info: Path) -> bool:
    """Whether ``found`` (the weights or the description) belongs to a finetune_kit export."""
    if found == info:
        return _export_document(info) is not None
    document = _export_document(info)
    if document is not None and document.get("weights_file") == weights.name:
        return True
    try:  # the description is gone (an interrupted export): the weights' own header says it
        if found.is_symlink() or not found.is_file():
            return False
        with safetensors.safe_open(str(found), framework="pt") as handle:
            return (handle.metadata() or {}).get("finetune_kit") == EXPORT_FORMAT
    except (SafetensorError, OSError, ValueError):
        return False


def export(source: str | Path, path: str | Path, *, use_ema: bool = True, overwrite: bool = False) -> Path:
    """Write a checkpoint's final weights as safetensors plus a JSON description.

    Args:
        source: a ``.ckpt`` checkpoint or a run directory (its ``last.ckpt``, else
            ``best.ckpt``: the final weights).
        path: a directory that receives ``model.safetensors`` and ``model.json`` (created if
            needed), or a ``NAME.safetensors`` path (the JSON goes beside it as ``NAME.json``).
        use_ema: export the EMA weights when the checkpoint has them (``model.json`` records
            which weights were exported under ``"weights"``).
        overwrite: replace an existing export at ``path``. Only files of a finetune_kit
            export are replaced: a ``NAME.json`` or weights file of anything else is refused.

    Returns:
        The directory of the export (``path``), or the ``.safetensors`` file when one was named.

    Raises:
        CheckpointError: the checkpoint is missing, corrupted, unsafe (pickled code is refused
            unread) or its weights do not fit its own model description.
        OutputDirError: the export files exist and ``overwrite`` is False, or ``path`` is a file.

    Example:
        >>> import tempfile, pathlib
        >>> from finetune_kit.storage.checkpoint import save_checkpoint
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
    user_path(path, "path")
    ckpt_path = find_checkpoint(source)
    state = load_checkpoint(ckpt_path)
    info, meta = stored_description(state, ckpt_path)
    weights, kind, ema = checkpoint_weights(state, use_ema)
    model = build_model(info, weights, state.get("freezing"), ckpt_path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    blob = _sorted_header(
        safetensors.torch.save(tensors, metadata={"format": "pt", "finetune_kit": EXPORT_FORMAT})
    )
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
        "preprocessing": {
            key: meta[key] for key in ("in_channels", "image_size", "input_size", "mean", "std")
        }
        | {"steps": PREPROCESSING},
        "model_info": info,
        "data_meta": meta,
        "source": {
            "checkpoint": str(ckpt_path),
            "epoch": position.get("epoch"),
            "global_step": position.get("global_step"),
        },
    }
    text = json.dumps(document, indent=2) + "\n"
    try:  # the description last: a kill leaves the old export, the new one, or none that loads
        atomic_write_group([(weights_path, blob), (info_path, text.encode("utf-8"))])
    except OSError as exc:
        raise OutputDirError(
            f"Could not write the export to {weights_path.parent}: "
            f"{exc.strerror or exc}. Free some disk space or choose another "
            "path."
        ) from None
    return weights_path if Path(path).suffix == ".safetensors" else Path(path)
