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

from finetune_kit.storage.atomic import atomic_write_bytes, atomic_write_text
from finetune_kit.storage.checkpoint import (
    capture_rng_state,
    find_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from finetune_kit.storage.run_dir import RunDir

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
