"""create_datasets / list_datasets / register_dataset over the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune_kit.data import (
    DATASETS,
    DatasetParts,
    ImageTensorDataset,
    create_datasets,
    list_datasets,
)
from finetune_kit.data.registry import register_dataset
from finetune_kit.errors import ConfigError, DataError, UnknownNameError

BUILTINS = ["cifar10", "cifar100", "fake", "fashion_mnist", "image_folder", "mnist", "tensors"]


def test_list_datasets() -> None:
    assert set(BUILTINS) <= set(list_datasets())
    assert list_datasets("cifar*") == ["cifar10", "cifar100"]


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_has_a_docstring_and_takes_root_and_download(name: str) -> None:
    import inspect

    builder = DATASETS.get(name)
    assert builder.__doc__
    params = inspect.signature(builder).parameters
    assert "root" in params and "download" in params


def tiny_files(name: str, root: Path) -> dict:
    """Write a tiny valid on-disk copy of a built-in dataset; return create_datasets kwargs."""
    import pickle

    import numpy as np
    from PIL import Image

    from finetune_kit.data.idx import write_idx

    gen = torch.Generator().manual_seed(0)
    if name in ("mnist", "fashion_mnist"):
        for split, n in (("train", 20), ("t10k", 10)):
            images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
            write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
            write_idx(root / f"{split}-labels-idx1-ubyte.gz", (torch.arange(n) % 10).to(torch.uint8))
        return {"root": root}
    if name == "cifar10":
        pixels = np.random.default_rng(0).integers(0, 256, (20, 3072), dtype=np.uint8)
        batch = {b"data": pixels, b"labels": [i % 10 for i in range(20)]}
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (root / f).write_bytes(pickle.dumps(batch, protocol=2))
        meta = {b"label_names": [b"c%d" % i for i in range(10)]}
        (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
        return {"root": root}
    if name == "cifar100":
        batch = {
            b"data": np.random.default_rng(0).integers(0, 256, (200, 3072), dtype=np.uint8),
            b"fine_labels": [i % 100 for i in range(200)],
            b"coarse_labels": [i % 20 for i in range(200)],
        }
        for f in ("train", "test"):
            (root / f).write_bytes(pickle.dumps(batch, protocol=2))
        meta = {
            b"fine_label_names": [b"f%d" % i for i in range(100)],
            b"coarse_label_names": [b"c%d" % i for i in range(20)],
        }
        (root / "meta").write_bytes(pickle.dumps(meta, protocol=2))
        return {"root": root}
    if name == "image_folder":
        for cls in ("a", "b"):
            (root / cls).mkdir()
            for i in range(10):
                Image.new("RGB", (6, 6), (20 * i, 5 * i, 9 * i)).save(root / cls / f"{i}.png")
        return {"root": root}
    if name == "tensors":
        x = torch.arange(20 * 25, dtype=torch.uint8).view(20, 1, 5, 5)
        return {"train": (x, torch.arange(20) % 2), "test": (x[:4], torch.arange(4) % 2)}
    if name == "fake":
        return {"train_size": 40, "test_size": 10}
    raise AssertionError(f"no tiny files for {name}")


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_builds_a_valid_bundle(name: str, tmp_path: Path, monkeypatch) -> None:
    import json

    from finetune_kit.data import make_loaders

    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", "")
    data = create_datasets(name, val_fraction=0.2, download=False, **tiny_files(name, tmp_path))
    assert data.name == name and len(data.class_names) == data.num_classes
    assert len(data.train) > 0 and len(data.val) > 0 and len(data.test) > 0
    assert data.train_indices.dtype == torch.int64 and data.val_indices.dtype == torch.int64
    assert len(data.mean) == len(data.std) == data.in_channels
    meta = json.loads(json.dumps(data.meta()))
    assert meta["image_size"] == list(data.image_size)
    loaders = make_loaders(data, batch_size=8)
    x, y = next(loaders.train.iter_epoch(0))
    assert x.shape[1:] == (data.in_channels, *data.input_size) and y.max() < data.num_classes


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'fashion_mnist'") as info:
        create_datasets("fashion_mnst")
    assert "cifar10" in str(info.value)


def test_unknown_option_lists_options() -> None:
    with pytest.raises(ConfigError, match=r"no option 'trainsize'.*train_size"):
        create_datasets("fake", trainsize=10)


def test_unknown_preset() -> None:
    with pytest.raises(UnknownNameError, match="preset"):
        create_datasets("fake", train_size=20, test_size=4, preset="cifar11")


def test_fake_is_deterministic_and_seeded() -> None:
    a = create_datasets("fake", train_size=30, test_size=5, seed=1)
    b = create_datasets("fake", train_size=30, test_size=5, seed=1)
    c = create_datasets("fake", train_size=30, test_size=5, seed=2)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val_indices, b.val_indices)
    assert not torch.equal(a.test.images, c.test.images)
    assert all(n.startswith("fake_") for n in a.class_names) and a.name == "fake"


def test_split_file_reused(tmp_path: Path) -> None:
    first = create_datasets("fake", train_size=50, test_size=5, seed=3)
    path = first.save_split(tmp_path / "split.json")
    again = create_datasets("fake", train_size=50, test_size=5, seed=3, val_fraction=0.3, split_file=path)
    assert torch.equal(again.val_indices, first.val_indices)
    assert torch.equal(again.train.images, first.train.images)
    missing = create_datasets("fake", train_size=50, test_size=5, seed=3, split_file=tmp_path / "none.json")
    assert torch.equal(missing.val_indices, first.val_indices)


def test_split_file_of_another_dataset(tmp_path: Path) -> None:
    path = create_datasets("fake", train_size=50, test_size=5).save_split(tmp_path / "split.json")
    with pytest.raises(DataError, match="was made for other data"):
        create_datasets("fake", train_size=60, test_size=5, split_file=path)


def test_val_fraction_zero_and_too_small() -> None:
    data = create_datasets("fake", train_size=20, test_size=4, val_fraction=0)
    assert data.val is None and data.val_indices.numel() == 0 and len(data.train) == 20
    with pytest.raises(DataError, match="leaves no validation images"):
        create_datasets("fake", train_size=5, test_size=2, num_classes=5, val_fraction=0.05)
    with pytest.raises(ConfigError, match="val_fraction"):
        create_datasets("fake", val_fraction=1.0)


def test_channels_option_converts() -> None:
    data = create_datasets("fake", train_size=20, test_size=4, in_channels=1, channels=3)
    assert data.in_channels == 3 and data.train.images.shape[1] == 3 and len(data.mean) == 3


def test_weights_meta_chooses_imagenet() -> None:
    meta = {
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    data = create_datasets("fake", train_size=20, test_size=4, image_size=16, weights_meta=meta)
    assert data.preset.name == "imagenet" and data.mean == (0.485, 0.456, 0.406)
    assert data.meta()["input_size"] == [224, 224] and data.meta()["image_size"] == [16, 16]
    gray = create_datasets("fake", train_size=20, test_size=4, in_channels=1, weights_meta=meta)
    assert len(gray.mean) == 1 and abs(gray.mean[0] - 0.449) < 1e-9
    assert gray.dataset_mean != gray.mean


def test_register_dataset_and_builder_checks() -> None:
    @register_dataset("test_data_registry_demo")
    def demo(*, root=None, download=True, n: int = 6):
        ds = ImageTensorDataset(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n) % 2, ["x", "y"])
        return DatasetParts(train=ds, test=ds, class_names=["x", "y"], default_preset="mnist")

    try:
        data = create_datasets("test_data_registry_demo", n=10, val_fraction=0.2)
        assert len(data.val) == 2 and data.preset.name == "mnist"
        with pytest.raises(ConfigError, match="already registered"):
            register_dataset("test_data_registry_demo", demo)
    finally:
        DATASETS.unregister("test_data_registry_demo")

    register_dataset("test_data_registry_bad", lambda **kw: (1, 2))
    try:
        with pytest.raises(ConfigError, match="must return"):
            create_datasets("test_data_registry_bad")
    finally:
        DATASETS.unregister("test_data_registry_bad")
