"""Reading files written by ``torch.save`` without ever running code from them.

:func:`read_torch_file` is the one place where the library calls ``torch.load``: always with
``weights_only=True``, which refuses pickled objects that could execute code. Whatever the file
holds -- a text file, a truncated download, random bytes, a pickle with code in it -- the
result is the loaded data or one :class:`~finetune_kit.errors.CheckpointError` that says what
the file is and what to do, never a raw ``KeyError`` from the unpickler and never PyTorch's
advice to load the file with ``weights_only=False``.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.ckpt"
    >>> _ = path.write_text("hello")
    >>> read_torch_file(path)
    Traceback (most recent call last):
    ...
    finetune_kit.errors.CheckpointError: Cannot read .../notes.ckpt: it is not a PyTorch file ...
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from finetune_kit.errors import CheckpointError

__all__ = ["read_torch_file"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_PROTO = b"\x80"  # the legacy format starts with a pickle (protocol 2 or later)
_UNSAFE = re.compile(r"unsupported global:?\s*(?:GLOBAL\s*)?([\w.]+)", re.IGNORECASE)
_OPERAND = re.compile(r"unsupported operand \d+", re.IGNORECASE)
# What torch and its zip reader raise on bytes that are no valid checkpoint.
_CORRUPT = (
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    struct.error,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
)


def _kind_of(head: bytes) -> str:
    if not head:
        return "it is empty"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        return "it looks like an image"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it looks like a text file"
    return f"it starts with the bytes {head[:8].hex()}"


def _reason(exc: BaseException) -> str:
    """A short cause in our words: the first line of the error, without PyTorch's advice."""
    if isinstance(exc, (KeyError, IndexError, TypeError, AttributeError, struct.error)):
        return "its contents do not follow the PyTorch format"
    text = " ".join(str(exc).split())
    for cut in (" This is an internal", " If you are seeing", " In PyTorch 2.6", " Please "):
        text = text.split(cut)[0]
    return (text[:160] or type(exc).__name__).rstrip(". ")


def read_torch_file(
    path: str | Path, *, what: str = "", fix: str = "", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``, with every failure turned into one clear error.

    Args:
        path: the file (must exist).
        what: a word for the file in messages (``"checkpoint"``, ``"weights file"``).
        fix: what the user can do about a corrupted file, for messages.
        map_location: where tensors are loaded.

    Returns:
        What the file holds.

    Raises:
        CheckpointError: unreadable, not a PyTorch file, truncated or corrupted, or holding
            pickled objects that could run code (refused unread: nothing of it runs).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save({"w": torch.ones(2)}, path)
        >>> read_torch_file(path)["w"].tolist()
        [1.0, 1.0]
    """
    path = Path(path)
    name = f"{what} {path}".strip()
    fix = fix or "Use another copy of the file."
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise CheckpointError(
            f"Cannot read {name}: {exc.strerror or exc}. Check the path and its permissions."
        ) from None
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO)):
        raise CheckpointError(
            f"Cannot read {name}: it is not a PyTorch file ({_kind_of(head)}); expected a file "
            f"written by torch.save. {fix}"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _UNSAFE.search(str(exc))
        if unsafe:
            raise CheckpointError(
                f"Refused to load {name}: it contains pickled objects that are not plain tensors "
                f"or data ({unsafe.group(1)}), which could run code; nothing in it was run. Only "
                "load files you trust, and re-save them as plain tensors (a state dict) or "
                ".safetensors."
            ) from None
        operand = _OPERAND.search(str(exc))
        detail = operand.group(0).lower() if operand else _reason(exc)
        raise CheckpointError(
            f"Cannot read {name}: it is corrupted (invalid pickle data: {detail}). {fix}"
        ) from None
    except _CORRUPT as exc:
        raise CheckpointError(
            f"Cannot read {name}: it is truncated or corrupted ({_reason(exc)}). {fix}"
        ) from None
