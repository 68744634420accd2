"""read_cifar: exact decoding and every bad input named with its file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_kit.data.cifar import read_cifar
from finetune_kit.errors import ConfigError, DataError


def write10(folder: Path, n: int = 3, **override) -> None:
    folder.mkdir(exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": np.arange(n * 3072, dtype=np.int64).reshape(n, 3072).astype(np.uint8),
            b"labels": list(range(n)),
        }
        batch.update(override.get(name, {}))
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = override.get("names", [b"n%d" % i for i in range(10)])
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))


def test_rows_are_rgb_planes(tmp_path: Path) -> None:
    write10(tmp_path, n=1)
    split = read_cifar(tmp_path, split="test")
    row = np.arange(3072).astype(np.uint8)
    assert torch.equal(split.images[0], torch.from_numpy(row.reshape(3, 32, 32)))
    assert split.class_names[9] == "n9" and len(read_cifar(tmp_path).targets) == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"data_batch_3": {b"labels": [0, 1]}}, "3 images but 2 labels"),
        ({"data_batch_2": {b"labels": [0, 1, 10]}}, r"label 10 is outside \[0, 10\)"),
        ({"data_batch_1": {b"data": np.zeros((3, 3071), np.uint8)}}, r"shape \(N, 3072\)"),
        ({"data_batch_1": {b"data": np.zeros((3, 3072), np.float32)}}, "should be uint8"),
        ({"names": [b"a", b"b"]}, "should list 10 class names"),
    ],
)
def test_bad_batches(tmp_path: Path, override: dict, message: str) -> None:
    write10(tmp_path, **override)
    with pytest.raises(DataError, match=message) as info:
        read_cifar(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    write10(tmp_path)
    path = tmp_path / "data_batch_4"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable CIFAR pickle") as info:
        read_cifar(tmp_path)
    assert str(path) in str(info.value)
    os.remove(path)
    with pytest.raises(DataError, match="does not exist"):
        read_cifar(tmp_path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_code_in_pickles(tmp_path: Path) -> None:
    write10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load"):
        read_cifar(tmp_path, split="test")


def test_bad_options_and_folder(tmp_path: Path) -> None:
    write10(tmp_path)
    with pytest.raises(ConfigError, match="split="):
        read_cifar(tmp_path, split="valid")
    with pytest.raises(ConfigError, match="coarse"):
        read_cifar(tmp_path, labels="coarse")
    with pytest.raises(DataError, match=r"neither batches\.meta"):
        read_cifar(tmp_path / "..")
