"""Built-in file datasets through create_datasets: real Fashion-MNIST, MNIST and CIFAR written
by the tests in their exact on-disk formats, read back pixel-exactly."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_kit.data import create_datasets
from finetune_kit.data.builtin import FASHION_MNIST_CLASSES
from finetune_kit.data.sources import ENV_DATA, ENV_SYSTEM_DIRS
from finetune_kit.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_SYSTEM_DIRS, str(tmp_path / "no-system-dirs"))


@pytest.fixture(scope="module")
def fashion():
    """Real Fashion-MNIST, read once for the module (skipped without dataset-fashion-mnist)."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ENV_DATA, raising=False)
        return create_datasets("fashion_mnist", root=FASHION, val_fraction=0.1, seed=0, download=False)


def test_real_fashion_mnist(fashion) -> None:
    assert len(fashion.train) + len(fashion.val) == 60_000 and len(fashion.test) == 10_000
    assert fashion.class_names == FASHION_MNIST_CLASSES
    assert (fashion.in_channels, fashion.image_size, fashion.num_classes) == (1, (28, 28), 10)
    full = torch.empty(60_000, dtype=torch.int64)
    full[fashion.train_indices] = fashion.train.targets
    full[fashion.val_indices] = fashion.val.targets
    assert full.bincount().tolist() == [6000] * 10
    assert full[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fashion.test.targets[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert fashion.val.targets.bincount().tolist() == [600] * 10
    assert fashion.preset.name == "fashion"


def test_real_fashion_mnist_statistics(fashion) -> None:
    """The stats are computed from the training split; the full-set values are the known ones."""
    from finetune_kit.data.stats import channel_stats

    images = torch.empty(60_000, 1, 28, 28, dtype=torch.uint8)
    images[fashion.train_indices] = fashion.train.images
    images[fashion.val_indices] = fashion.val.images
    mean, std = channel_stats(images)
    assert round(mean[0], 4) == 0.2860 and round(std[0], 4) == 0.3530
    assert fashion.mean == fashion.dataset_mean and abs(fashion.mean[0] - mean[0]) < 2e-3


def test_real_fashion_found_in_system_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    monkeypatch.setenv(ENV_SYSTEM_DIRS, str(FASHION.parent))
    from finetune_kit.data.builtin import SOURCES
    from finetune_kit.data.sources import find_source

    assert find_source(SOURCES["fashion_mnist"], root=None, download=False) == FASHION


def idx_bytes(array: np.ndarray) -> bytes:
    return (
        struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    )


def write_mnist(folder: Path, *, compress: bool, n_train: int = 30, n_test: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    for name, array in arrays.items():
        data = idx_bytes(array)
        (folder / (name + (".gz" if compress else ""))).write_bytes(gzip.compress(data) if compress else data)
    return arrays


@pytest.mark.parametrize(
    ("layout", "compress"), [("", True), ("", False), ("MNIST/raw", False), ("mnist", True)]
)
def test_mnist_from_written_idx_files(tmp_path: Path, layout: str, compress: bool) -> None:
    arrays = write_mnist(tmp_path / layout, compress=compress)
    data = create_datasets("mnist", root=tmp_path, val_fraction=0, download=False)
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert data.test.targets.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.class_names == [str(d) for d in range(10)] and data.preset.name == "mnist"


def test_mnist_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path / "data" / "mnist", compress=True)
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "data"))
    assert len(create_datasets("mnist", val_fraction=0, download=False).train) == 30


def test_missing_data_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        create_datasets("fashion_mnist", root=tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "no such folder" in message
    assert "Fix it in one of three ways" in message


def test_corrupt_mnist_file_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, compress=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated") as info:
        create_datasets("mnist", root=tmp_path, download=False)
    assert str(path) in str(info.value)


def write_cifar10(folder: Path, per_batch: int = 6) -> dict:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"filenames": [b"f%d.png" % i for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = batch
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return written


def test_cifar10_from_written_pickles(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path / "cifar-10-batches-py")
    data = create_datasets("cifar10", root=tmp_path, val_fraction=0, download=False)
    train_rows = np.concatenate([written[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(data.train.images, torch.from_numpy(train_rows).view(-1, 3, 32, 32))
    # pixel (channel 1, row 2, column 3) of image 0 is byte 1024 + 2 * 32 + 3 of its row
    assert int(data.test.images[0, 1, 2, 3]) == int(written["test_batch"][b"data"][0, 1024 + 67])
    assert data.test.targets.tolist() == written["test_batch"][b"labels"]
    assert data.class_names[1] == "automobile" and data.preset.name == "cifar"


def write_cifar100(folder: Path, n: int = 40) -> dict:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True)
    written = {}
    for split in ("train", "test"):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"fine_labels": [int(v) for v in np.arange(n) % 100],
            b"coarse_labels": [int(v) for v in np.arange(n) % 20],
        }
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
        written[split] = batch
    meta = {
        b"fine_label_names": [b"fine%d" % i for i in range(100)],
        b"coarse_label_names": [b"coarse%d" % i for i in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


@pytest.mark.parametrize(("labels", "count"), [("fine", 100), ("coarse", 20)])
def test_cifar100_fine_and_coarse(tmp_path: Path, labels: str, count: int) -> None:
    written = write_cifar100(tmp_path / "cifar-100-python")
    data = create_datasets("cifar100", root=tmp_path, val_fraction=0, download=False, labels=labels)
    assert data.num_classes == count and data.class_names[3] == f"{labels}3"
    assert torch.equal(data.test.images.flatten(1), torch.from_numpy(written["test"][b"data"]))
    assert data.train.targets.tolist() == written["train"][f"{labels}_labels".encode()]


def test_cifar100_bad_label_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'fine'"):
        create_datasets("cifar100", root=tmp_path, labels="medium", download=False)
