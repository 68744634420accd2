"""Checkpoints: written atomically, loaded without ever running code from the file.

A checkpoint is one ``.ckpt`` file: a ``torch.save``'d dict of tensors and plain data
(model, optimizer, scheduler, scaler and EMA states, freezing state, RNG states, data position,
the resolved config and the library version). Writing goes to a temporary file in the same
directory, is flushed to disk with ``fsync`` and then renamed over the target, so a reader sees
either the old file or the new one, never half of one. Reading uses
``torch.load(weights_only=True)``, which refuses pickled objects that could execute code.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.ckpt"
    >>> save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 3}, path)
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune_kit.errors import CheckpointError
from finetune_kit.storage import metadata
from finetune_kit.storage.atomic import atomic_write_bytes
from finetune_kit.storage.paths import user_path
from finetune_kit.storage.torch_files import read_torch_file

__all__ = [
    "capture_rng_state",
    "find_checkpoint",
    "link_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Save a checkpoint dict atomically (see the module docstring).

    The state is serialised in memory first, so a full disk surfaces as one clear
    :class:`CheckpointError` from the write, never as an error inside ``torch.save``.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    try:
        atomic_write_bytes(path, lambda handle: handle.write(data))
    except OSError as exc:
        raise CheckpointError(
            f"Could not write {path}: {exc.strerror or exc}. Free some disk space or choose "
            "another output directory; the previous file (if any) is unchanged."
        ) from exc


def link_checkpoint(source: str | Path, target: str | Path) -> None:
    """Make ``target`` hold the same checkpoint as ``source`` without writing it twice.

    A hard link, swapped in atomically (``target`` is the old file or the new one, never half
    of one); where links are not possible (some file systems), an atomic copy.

    Raises:
        CheckpointError: the copy could not be written.
    """
    source, target = Path(source), Path(target)
    temp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
    try:
        temp.unlink(missing_ok=True)
        os.link(source, temp)
        os.replace(temp, target)
        return
    except OSError:
        temp.unlink(missing_ok=True)
    data = source.read_bytes()
    try:
        atomic_write_bytes(target, lambda handle: handle.write(data))
    except OSError as exc:
        raise CheckpointError(
            f"Could not write {target}: {exc.strerror or exc}. Free some disk space."
        ) from exc


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely with ``torch.load(weights_only=True)``.

    Args:
        path: a ``.ckpt`` file.
        map_location: where tensors are loaded.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: missing, truncated or corrupted file, or a file that holds pickled
            objects other than tensors and plain data (it is refused without running them).
    """
    path = user_path(path, "checkpoint")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}. Check the path (e.g. runs/NAME/last.ckpt).")
    state = read_torch_file(path, what="checkpoint", fix=_FIX, map_location=map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(
            f"{path} is not a finetune_kit checkpoint (no 'model' entry). To load plain weights, "
            "use create_model(..., weights=PATH)."
        )
    _check_entries(state, str(path))
    return state


_FIX = "Use an earlier checkpoint of the run (best.ckpt, epoch=*.ckpt) or start again."


def _check_entries(state: dict[str, Any], where: str) -> None:
    """The entries every reader relies on, checked once here (see :mod:`.metadata`)."""
    _check_weights(state["model"], where, "model")
    ema = state.get("ema")
    if ema is not None:
        if not isinstance(ema, dict) or "module" not in ema:
            raise CheckpointError(f"{where}: its ema entry has no 'module' weights. {_FIX}")
        _check_weights(ema["module"], where, "ema.module")
    if state.get("config") is not None and not isinstance(state["config"], dict):
        raise CheckpointError(
            f"{where}: its config entry must be a table of sections, got "
            f"{type(state['config']).__name__}. {_FIX}"
        )
    if state.get("model_info") is not None:
        metadata.check_model_info(state["model_info"], where, complete=False, fix=_FIX)
    if state.get("data_meta") is not None:
        metadata.check_data_meta(state["data_meta"], where, fix=_FIX)
    if state.get("freezing") is not None:
        metadata.check_freezing(state["freezing"], where, fix=_FIX)
    if state.get("position") is not None:
        metadata.check_position(state["position"], where, fix=_FIX)


def _check_weights(weights: Any, where: str, entry: str) -> None:
    if not isinstance(weights, dict):
        raise CheckpointError(
            f"{where}: its {entry} entry must be a table of named tensors, got "
            f"{type(weights).__name__}. {_FIX}"
        )
    for key, value in weights.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise CheckpointError(
                f"{where}: its {entry} entry must map names to tensors, but {key!r} holds a "
                f"{type(value).__name__}. {_FIX}"
            )


def find_checkpoint(source: str | Path) -> Path:
    """Resolve a checkpoint path: a file, or a run directory (its ``last.ckpt``).

    Raises:
        CheckpointError: nothing loadable there.
    """
    path = user_path(source, "checkpoint")
    if path.is_dir():
        for name in ("last.ckpt", "best.ckpt", "final.ckpt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"No checkpoint in run directory {path} (looked for last.ckpt, best.ckpt).")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}. Check the path.")
    return path


def capture_rng_state() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch (CPU and every CUDA device), as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
