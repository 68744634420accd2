"""Whether a file on disk belongs to a finetune_kit export, so ``overwrite`` replaces only those.

``export(..., overwrite=True)`` replaces an earlier export at the same path, never a file of the
user's that happens to carry the same name (a ``model.json`` of another tool, a hand-made
``model.onnx``). A file counts as part of an export when it says so itself: the description
``model.json`` by its ``"format"``, the weights by the description that names them or by their
own safetensors header, and an ONNX or ``torch.export`` file by the deploy marker written into
its metadata. Nothing here imports PyTorch.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "model.json").write_text(json.dumps({"format": "something else"}))
    >>> is_export_file(d / "model.json", [d / "model.safetensors", d / "model.json"])
    False
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Sequence
from pathlib import Path

from finetune_kit.inference.deploy_meta import DEPLOY_FORMAT

__all__ = ["is_export_file"]

_MAX_DESCRIPTION = 256 * 2**20


def _export_format() -> str:
    from finetune_kit.inference.stored_model import EXPORT_FORMAT  # imports PyTorch: only when asked

    return EXPORT_FORMAT


def _export_document(info: Path) -> dict | None:
    """The export description at ``info``, or None when the file is not one."""
    try:
        if info.is_symlink() or not info.is_file() or info.stat().st_size > _MAX_DESCRIPTION:
            return None
        document = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) and document.get("format") == _export_format() else None


def _safetensors_marked(path: Path) -> bool:
    """Whether a safetensors file's own header names it a finetune_kit export."""
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size <= _MAX_DESCRIPTION:
                return False
            header = json.loads(handle.read(size))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(metadata, dict) and metadata.get("finetune_kit") == _export_format()


def _holds_marker(path: Path, marker: bytes) -> bool:
    """Whether the file's bytes hold ``marker`` (ONNX metadata and ``.pt2`` extra files are stored
    as plain strings)."""
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return view.find(marker) >= 0
    except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
        return False


def is_export_file(found: Path, group: Sequence[Path]) -> bool:
    """Whether ``found``, one of the files an export is about to write, holds an earlier export.

    Args:
        found: an existing file at one of the export's paths.
        group: every path the export writes (a safetensors export's description is the
            ``.json`` beside its weights).

    Returns:
        True when the file says it is part of a finetune_kit export; False for anything else
        (including a symbolic link, which an export never writes).
    """
    if found.is_symlink() or not found.is_file():
        return False
    suffix = found.suffix.lower()
    if suffix == ".json":
        return _export_document(found) is not None
    if suffix == ".safetensors":
        info = found.with_suffix(".json")
        document = _export_document(info) if info in group else None
        if document is not None and document.get("weights_file") == found.name:
            return True
        return _safetensors_marked(found)  # the description is gone (an interrupted export)
    return _holds_marker(found, DEPLOY_FORMAT.encode())
