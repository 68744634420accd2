"""Storage: atomic file writes, checkpoint files and run directories.

Everything the library writes goes through here, so that a reader never sees half a file and
nothing a user wrote is overwritten by surprise.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write_text(path, "hello")
    >>> path.read_text()
    'hello'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from finetune_kit.storage.atomic import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from finetune_kit.storage.checkpoint import (
        capture_rng_state,
        find_checkpoint,
        load_checkpoint,
        restore_rng_state,
        save_checkpoint,
    )
    from finetune_kit.storage.run_dir import RunDir

# Names whose modules import PyTorch, loaded on first use (PEP 562), so that the torch-free
# parts (atomic writes, paths, metadata checks) can be imported on their own.
_LAZY = {
    "RunDir": "finetune_kit.storage.run_dir",
    "capture_rng_state": "finetune_kit.storage.checkpoint",
    "find_checkpoint": "finetune_kit.storage.checkpoint",
    "load_checkpoint": "finetune_kit.storage.checkpoint",
    "restore_rng_state": "finetune_kit.storage.checkpoint",
    "save_checkpoint": "finetune_kit.storage.checkpoint",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'finetune_kit.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "RunDir",
    "atomic_write_bytes",
    "atomic_write_text",
    "capture_rng_state",
    "find_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
