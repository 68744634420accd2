"""Reader for the CIFAR-10 / CIFAR-100 "python version" pickle batches, into uint8 tensors.

``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
``batches.meta``; ``cifar-100-python/`` holds ``train``, ``test`` and ``meta``. Each batch is a
pickled dict with ``b"data"`` (N, 3072) uint8 rows -- the red, green and blue 32x32 planes -- and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` / ``b"coarse_labels"`` (CIFAR-100).

Pickles can run code when loaded, so these are read with an unpickler that only builds plain
containers and numpy arrays; anything else is refused with a :class:`DataError`.

Example:
    >>> import pickle, tempfile, pathlib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 1]}
    >>> for f in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]:
    ...     _ = (d / f).write_bytes(pickle.dumps(batch, protocol=2))
    >>> meta = {b"label_names": [b"c%d" % i for i in range(10)]}
    >>> _ = (d / "batches.meta").write_bytes(pickle.dumps(meta))
    >>> split = read_cifar(d, split="train")
    >>> tuple(split.images.shape), split.targets.tolist()[:2], split.class_names[3]
    ((10, 3, 32, 32), [3, 1], 'c3')
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune_kit.errors import ConfigError, DataError

__all__ = ["CifarSplit", "read_cifar"]

_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"),  # numpy arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
}


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 array constructor, for plain (non-object) dtypes only."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError("refusing an array of Python objects")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


@dataclass(frozen=True)
class CifarSplit:
    """One CIFAR split: ``images`` (N, 3, 32, 32) uint8, ``targets`` (N,) int64, class names.

    Example:
        >>> import torch
        >>> images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
        >>> s = CifarSplit(images, torch.tensor([0]), ["a"], "x")
        >>> s.class_names
        ['a']
    """

    images: torch.Tensor
    targets: torch.Tensor
    class_names: list[str]
    source: str


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]
        if name == "scalar":
            return np.float64(0).__reduce__()[0]
        if name == "_frombuffer":
            return _frombuffer
        return super().find_class(module, name)


def _load(path: Path) -> dict[bytes, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"CIFAR file {path} does not exist.") from exc
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{path} is not a readable CIFAR pickle ({exc}); the file is truncated, corrupt or "
            "not a CIFAR batch. Delete it and extract the archive again."
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} should hold a dict of arrays; it holds {type(obj).__name__}.")
    bad = [k for k in obj if not isinstance(k, (bytes, str))]
    if bad:
        raise DataError(
            f"{path}: its keys must be names such as b'data' and b'labels', but it has the key "
            f"{bad[0]!r}. The file is corrupt or not a CIFAR batch; extract the archive again."
        )
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _labels(path: Path, raw: Any, count: int, num_classes: int) -> np.ndarray:
    """Integer labels in ``[0, num_classes)``, one per image, or a DataError naming the file."""
    labels = np.asarray(raw) if isinstance(raw, (list, tuple, np.ndarray)) else None
    if labels is not None and labels.dtype.kind in "iu" and labels.ndim == 1 and len(labels) != count:
        raise DataError(f"{path} holds {count} images but {len(labels)} labels; the file is corrupt.")
    if labels is None or labels.dtype.kind not in "iu" or labels.shape != (count,):
        shape = None if labels is None else f"{labels.dtype} values of shape {labels.shape}"
        what = shape or f"a {type(raw).__name__}"
        raise DataError(
            f"{path}: the labels must be {count} integers, one per image; found {what}. "
            "The file is corrupt or not a CIFAR batch; extract the archive again."
        )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min() if labels.min() < 0 else labels.max())
        raise DataError(f"{path}: label {bad} is outside [0, {num_classes}); the file is corrupt.")
    return labels.astype(np.int64)


def _batch(path: Path, label_key: bytes, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _load(path)
    if b"data" not in batch or label_key not in batch:
        raise DataError(
            f"{path} lacks the key {'data' if b'data' not in batch else label_key.decode()!r}; "
            f"found {sorted(k.decode(errors='replace') for k in batch)}. "
            "Is it the right CIFAR file?"
        )
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: 'data' should be uint8 of shape (N, 3072) (three 32x32 planes per row); "
            f"it is {data.dtype} of shape {data.shape}."
        )
    labels = _labels(path, batch[label_key], data.shape[0], num_classes)
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def _names(path: Path, key: bytes, expected: int) -> list[str]:
    meta = _load(path)
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != expected:
        found = len(names) if isinstance(names, list) else type(names).__name__
        raise DataError(
            f"{path}: {key.decode()!r} should list {expected} class names; found {found}. "
            "The file is corrupt or not a CIFAR meta file; extract the archive again."
        )
    if not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(
            f"{path}: the class names in {key.decode()!r} must be texts; found "
            f"{next(n for n in names if not isinstance(n, (bytes, str)))!r}. Extract the archive again."
        )
    try:
        return [n.decode() if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{path}: a class name is not valid UTF-8. Extract the archive again.") from None


def read_cifar(directory: str | Path, *, split: str = "train", labels: str = "fine") -> CifarSplit:
    """Read one split of CIFAR-10 or CIFAR-100 from its python-pickle folder.

    The variant is recognised from the files: ``batches.meta`` means CIFAR-10, ``meta`` with
    ``train``/``test`` means CIFAR-100.

    Args:
        directory: ``cifar-10-batches-py/`` or ``cifar-100-python/`` (or a folder with the same
            files).
        split: ``"train"`` or ``"test"``.
        labels: CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Returns:
        A :class:`CifarSplit`.

    Raises:
        DataError: missing files, an unreadable or unsafe pickle, wrong shapes, a count
            mismatch or a label out of range -- naming the file.
        ConfigError: a bad ``split`` or ``labels`` value.

    Example:
        >>> import tempfile
        >>> read_cifar(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        finetune_kit.errors.DataError: ... holds neither batches.meta (CIFAR-10) nor meta ...
    """
    folder = Path(directory)
    if split not in ("train", "test"):
        raise ConfigError(f"read_cifar split={split!r}: expected 'train' or 'test'.")
    if (folder / "batches.meta").is_file():
        if labels != "fine":
            raise ConfigError("CIFAR-10 has one label set; labels='coarse' is for CIFAR-100 only.")
        names = _names(folder / "batches.meta", b"label_names", 10)
        files, key = (_CIFAR10_TRAIN if split == "train" else ["test_batch"]), b"labels"
    elif (folder / "meta").is_file():
        count = 100 if labels == "fine" else 20
        names = _names(folder / "meta", f"{labels}_label_names".encode(), count)
        files, key = [split], f"{labels}_labels".encode()
    else:
        raise DataError(
            f"{folder} holds neither batches.meta (CIFAR-10) nor meta (CIFAR-100). Point to the "
            "extracted cifar-10-batches-py/ or cifar-100-python/ folder."
        )
    parts = [_batch(folder / f, key, len(names)) for f in files]
    images = torch.cat([p[0] for p in parts])
    targets = torch.cat([p[1] for p in parts])
    return CifarSplit(images, targets, names, str(folder / files[0]))
