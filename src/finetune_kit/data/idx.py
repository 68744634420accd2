"""Reader for the IDX format of MNIST and Fashion-MNIST (``.gz`` or raw), into tensors.

An IDX file is a 4-byte magic number -- two zero bytes, a type code (0x08 = unsigned byte) and the
number of dimensions -- then one big-endian uint32 per dimension, then the values. The files are
decoded in one go (no per-item work), and everything is checked: the magic number, the type, the
payload length against the dimensions (truncated or trailing bytes), the image/label counts and
the label range. Each problem is a :class:`DataError` naming the file.

Example:
    >>> import gzip, struct, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> _ = path.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 0x08, 1, 3) + bytes([7, 0, 2])))
    >>> read_idx(path).tolist()
    [7, 0, 2]
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from finetune_kit.errors import DataError

__all__ = ["read_idx", "read_idx_pair", "write_idx"]

# type code -> (numpy big-endian dtype, torch dtype of the returned tensor)
_IDX_TYPES: dict[int, tuple[str, torch.dtype]] = {
    0x08: ("u1", torch.uint8),
    0x09: ("i1", torch.int8),
    0x0B: (">i2", torch.int16),
    0x0C: (">i4", torch.int32),
    0x0D: (">f4", torch.float32),
    0x0E: (">f8", torch.float64),
}
_GZIP_MAGIC = b"\x1f\x8b"
_REDOWNLOAD = "Delete it and download it again, or copy an intact file in its place."
_MAX_BYTES = 2**32  # 4 GiB: far above any MNIST-like file, far below a gzip bomb's payload


def _read_bounded(stream: gzip.GzipFile, path: Path) -> bytes:
    """Decompress only as much as the IDX header declares (plus one byte to detect more)."""
    head = stream.read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_TYPES:
        return head  # not an IDX header: read_idx says so
    raw_dims = stream.read(4 * head[3])
    dims = [int.from_bytes(raw_dims[i : i + 4], "big") for i in range(0, len(raw_dims) - 3, 4)]
    size = math.prod(dims) * np.dtype(_IDX_TYPES[head[2]][0]).itemsize
    if size > _MAX_BYTES:
        raise DataError(
            f"{path}: its IDX header declares shape {tuple(dims)}, {size // 2**30:,} GiB of "
            f"data, more than an IDX dataset holds. {_REDOWNLOAD}"
        )
    return head + raw_dims + stream.read(size + 1)


def _read_bytes(path: Path) -> bytes:
    """The decompressed contents of ``path`` (gzip is detected from the first two bytes)."""
    try:
        with path.open("rb") as f:
            head = f.read(2)
            f.seek(0)
            if head != _GZIP_MAGIC:
                return f.read()
            with gzip.GzipFile(fileobj=f) as gz:
                return _read_bounded(gz, path)
    except FileNotFoundError as exc:
        raise DataError(f"IDX file {path} does not exist.") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: the gzip stream is corrupt or truncated ({exc}). {_REDOWNLOAD}") from exc
    except OSError as exc:
        raise DataError(f"Cannot read IDX file {path}: {exc}.") from exc


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (gzip-compressed or raw) into a tensor of its stored shape.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz`` or ``train-labels-idx1-ubyte``.

    Returns:
        A tensor of the file's dimensions; ``uint8`` for the unsigned-byte type that MNIST uses.

    Raises:
        DataError: the file is missing, the gzip stream is broken, the magic number is wrong, or
            the payload is shorter (truncated) or longer than its dimensions say.

    Example:
        >>> import struct, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte"
        >>> _ = p.write_bytes(struct.pack(">HBBII", 0, 8, 2, 2, 3) + bytes(range(6)))
        >>> read_idx(p).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(
            f"{path} is not an IDX file: wrong magic number {raw[:4].hex() or '(empty file)'}; "
            "expected 0000 then a type byte (08 for unsigned bytes) and the number of dimensions, "
            f"e.g. 00000803 for images. {_REDOWNLOAD}"
        )
    np_dtype, torch_dtype = _IDX_TYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated or declares {ndim} dimensions. {_REDOWNLOAD}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    itemsize = np.dtype(np_dtype).itemsize
    expected = math.prod(dims) * itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"{path} is {problem}: the header declares shape {tuple(dims)} ({expected} bytes of "
            f"data) but the file holds {'at least ' if actual > expected else ''}{actual}. {_REDOWNLOAD}"
        )
    array = np.frombuffer(raw, dtype=np_dtype, count=math.prod(dims), offset=header)
    return torch.from_numpy(array.astype(np_dtype.lstrip(">"), copy=True).reshape(dims)).to(torch_dtype)


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path, *, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an MNIST-style image file and label file and check that they belong together.

    Args:
        images_path: ``*-images-idx3-ubyte[.gz]``, shape ``(N, H, W)`` uint8.
        labels_path: ``*-labels-idx1-ubyte[.gz]``, shape ``(N,)`` uint8.
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        ``images`` ``(N, 1, H, W)`` uint8 and ``targets`` ``(N,)`` int64.

    Raises:
        DataError: any problem of :func:`read_idx`, a wrong number of dimensions or type, a
            count mismatch between the two files, or a label out of range.

    Example:
        >>> import struct, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "i").write_bytes(struct.pack(">HBBIII", 0, 8, 3, 2, 1, 1) + bytes([5, 6]))
        >>> _ = (d / "l").write_bytes(struct.pack(">HBBI", 0, 8, 1, 2) + bytes([1, 0]))
        >>> x, y = read_idx_pair(d / "i", d / "l", num_classes=2)
        >>> tuple(x.shape), y.tolist()
        ((2, 1, 1, 1), [1, 0])
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != torch.uint8:
        raise DataError(
            f"{images_path} should hold uint8 images of shape (N, H, W) (magic 00000803); it holds "
            f"{images.dtype} of shape {tuple(images.shape)}. Is it a label file?"
        )
    if labels.ndim != 1 or labels.dtype != torch.uint8:
        raise DataError(
            f"{labels_path} should hold uint8 labels of shape (N,) (magic 00000801); it holds "
            f"{labels.dtype} of shape {tuple(labels.shape)}. Is it an image file?"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels. The two files must come from the same split; "
            "replace the mismatched one."
        )
    targets = labels.to(torch.int64)
    if targets.numel() and int(targets.max()) >= num_classes:
        raise DataError(
            f"{labels_path}: label {int(targets.max())} is outside [0, {num_classes}) "
            f"({num_classes} classes). The file is corrupt or belongs to another dataset."
        )
    return images.unsqueeze(1), targets


def write_idx(path: str | Path, tensor: torch.Tensor) -> Path:
    """Write a tensor as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: destination.
        tensor: uint8, int8, int16, int32, float32 or float64 values of any shape.

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch
        >>> labels = torch.tensor([1, 2], dtype=torch.uint8)
        >>> p = write_idx(tempfile.mkdtemp() + "/t-idx1-ubyte.gz", labels)
        >>> read_idx(p).tolist()
        [1, 2]
    """
    path = Path(path)
    codes = {torch_dtype: (code, np_dtype) for code, (np_dtype, torch_dtype) in _IDX_TYPES.items()}
    if tensor.dtype not in codes:
        raise DataError(f"write_idx cannot store {tensor.dtype}; IDX holds {sorted(map(str, codes))}.")
    code, np_dtype = codes[tensor.dtype]
    header = bytes([0, 0, code, tensor.ndim]) + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    payload = header + tensor.contiguous().numpy().astype(np_dtype).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path
