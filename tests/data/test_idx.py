"""IDX reader: exact bytes in, exact tensors out; every corruption named with its file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_kit.data.idx import read_idx, read_idx_pair, write_idx
from finetune_kit.errors import DataError


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX by hand: two zero bytes, the type code, ndim, big-endian dims, big-endian data."""
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_images_pixel_exact(tmp_path: Path, images: np.ndarray, compress: bool) -> None:
    raw = idx_bytes(images)
    path = tmp_path / ("x-idx3-ubyte" + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == torch.uint8
    assert torch.equal(out, torch.from_numpy(images))


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
def test_reads_other_types_big_endian(tmp_path: Path, code: int, dtype: type) -> None:
    values = np.array([[-3, 2], [1000 if dtype != np.int8 else 100, 7]], dtype=dtype)
    (tmp_path / "v").write_bytes(idx_bytes(values, code))
    assert read_idx(tmp_path / "v").numpy().tolist() == values.tolist()


def test_gzip_detected_by_content_not_name(tmp_path: Path, images: np.ndarray) -> None:
    (tmp_path / "plain.gz").write_bytes(idx_bytes(images))
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(images)))
    assert torch.equal(read_idx(tmp_path / "plain.gz"), read_idx(tmp_path / "packed"))


def test_write_idx_matches_hand_written_bytes(tmp_path: Path, images: np.ndarray) -> None:
    write_idx(tmp_path / "a", torch.from_numpy(images))
    assert (tmp_path / "a").read_bytes() == idx_bytes(images)
    write_idx(tmp_path / "a.gz", torch.from_numpy(images))
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == idx_bytes(images)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x01\x02" + b[2:], "wrong magic number"),
        (lambda b: b[:2] + b"\x42" + b[3:], "wrong magic number"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\x00\x00", "longer than its header says"),
        (lambda b: b[:6], "header is truncated"),
        (lambda b: b"", "empty file"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path: Path, images: np.ndarray, mutate, message: str) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(images)))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream(tmp_path: Path, images: np.ndarray) -> None:
    packed = gzip.compress(idx_bytes(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="gzip stream is corrupt or truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "download it again" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


def _pair(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    (tmp_path / "i.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "l").write_bytes(idx_bytes(labels))
    return tmp_path / "i.gz", tmp_path / "l"


def test_pair_adds_channel_axis(tmp_path: Path, images: np.ndarray) -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.uint8)
    x, y = read_idx_pair(*_pair(tmp_path, images, labels), num_classes=7)
    assert x.shape == (7, 1, 5, 4) and y.dtype == torch.int64
    assert torch.equal(x[:, 0], torch.from_numpy(images)) and y.tolist() == labels.tolist()


def test_pair_count_mismatch(tmp_path: Path, images: np.ndarray) -> None:
    paths = _pair(tmp_path, images, np.zeros(6, dtype=np.uint8))
    with pytest.raises(DataError, match=r"7 images but .* 6 labels") as info:
        read_idx_pair(*paths, num_classes=10)
    assert str(paths[0]) in str(info.value) and str(paths[1]) in str(info.value)


def test_pair_label_out_of_range(tmp_path: Path, images: np.ndarray) -> None:
    paths = _pair(tmp_path, images, np.array([0, 1, 2, 3, 4, 5, 10], dtype=np.uint8))
    with pytest.raises(DataError, match=r"label 10 is outside \[0, 10\)") as info:
        read_idx_pair(*paths, num_classes=10)
    assert str(paths[1]) in str(info.value)


def test_pair_swapped_files(tmp_path: Path, images: np.ndarray) -> None:
    i, lab = _pair(tmp_path, images, np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="Is it a label file"):
        read_idx_pair(lab, i, num_classes=10)
