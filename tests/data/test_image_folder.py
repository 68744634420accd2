"""image_folder: PNG/JPEG class folders in both layouts, read back pixel-exactly; bad folders."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from finetune_kit.data import create_datasets
from finetune_kit.data.sources import cache_dir
from finetune_kit.errors import ConfigError, DataError


def image(seed: int, c: int = 3, h: int = 6, w: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def write_png(img: torch.Tensor, path: str) -> None:
    array = img.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if img.shape[0] == 1 else array).save(path)


def write_jpeg(img: torch.Tensor, path: str, quality: int) -> None:
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path, format="JPEG", quality=quality)


def write_class_folders(root: Path, counts: dict[str, int], c: int = 3, h: int = 6, w: int = 5) -> dict:
    written = {}
    for k, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = image(100 * k + i, c, h, w)
            write_png(img, str(root / cls / f"{i:03d}.png"))
            written[(cls, i)] = img
    return written


def test_split_layout_pixel_exact(tmp_path: Path) -> None:
    train = write_class_folders(tmp_path / "train", {"cat": 3, "dog": 2})
    val = write_class_folders(tmp_path / "val", {"cat": 1, "dog": 1})
    test = write_class_folders(tmp_path / "test", {"dog": 2})
    data = create_datasets("image_folder", root=tmp_path, val_fraction=0.5)
    assert data.class_names == ["cat", "dog"] and (data.in_channels, data.image_size) == (3, (6, 5))
    assert len(data.train) == 5 and len(data.val) == 2 and len(data.test) == 2
    assert data.val_indices is None  # the folder's own val/ is used
    assert torch.equal(data.train.images[0], train[("cat", 0)])
    assert torch.equal(data.train.images[4], train[("dog", 1)])
    assert torch.equal(data.val.images[1], val[("dog", 0)])
    assert data.test.targets.tolist() == [1, 1] and torch.equal(data.test.images[1], test[("dog", 1)])


def test_single_folder_split_by_the_library(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 10, "b": 10, "c": 10})
    one = create_datasets("image_folder", root=tmp_path, test_fraction=0.2, val_fraction=0.25, seed=0)
    two = create_datasets("image_folder", root=tmp_path, test_fraction=0.2, val_fraction=0.25, seed=1)
    assert len(one.test) == 6 and one.test.targets.bincount().tolist() == [2, 2, 2]
    assert len(one.train) + len(one.val) == 24 and len(one.val) == 6
    # the test set does not depend on the run seed
    assert torch.equal(one.test.images, two.test.images)
    assert not torch.equal(one.val.images, two.val.images)


def test_grayscale_detected_and_channels_forced(tmp_path: Path) -> None:
    written = write_class_folders(tmp_path, {"x": 4, "y": 4}, c=1)
    gray = create_datasets("image_folder", root=tmp_path, val_fraction=0, test_fraction=0.25)
    assert gray.in_channels == 1 and gray.preset.name == "small"  # image folders: crop + flip by size
    all_images = torch.cat([gray.train.images, gray.test.images])
    assert any(torch.equal(img, written[("x", 0)]) for img in all_images)
    rgb = create_datasets("image_folder", root=tmp_path, val_fraction=0, test_fraction=0.25, channels=3)
    assert rgb.in_channels == 3 and torch.equal(rgb.train.images[:, 0], rgb.train.images[:, 2])


def test_mixed_gray_and_rgb_become_rgb(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "a", {"gray": 2}, c=1)
    write_class_folders(tmp_path / "b", {"rgb": 2}, c=3)
    for src in ("a", "b"):
        for p in (tmp_path / src).iterdir():
            p.rename(tmp_path / p.name)
        (tmp_path / src).rmdir()
    data = create_datasets("image_folder", root=tmp_path, val_fraction=0, test_fraction=0.5)
    assert data.in_channels == 3


def test_jpeg_and_resize(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i, size in enumerate([(16, 12), (9, 20)]):
            write_jpeg(image(i, 3, *size), str(tmp_path / cls / f"{i}.JPG"), quality=95)
    data = create_datasets("image_folder", root=tmp_path, image_size=8, val_fraction=0, test_fraction=0.5)
    assert data.image_size == (8, 8) and len(data.train) == 2


def test_mixed_sizes_without_resize(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_png(image(0, h=6, w=5), str(tmp_path / "a" / "0.png"))
    write_png(image(1, h=7, w=5), str(tmp_path / "a" / "1.png"))
    with pytest.raises(DataError, match=r"differ in size.*1\.png is 7x5.*image_size=") as info:
        create_datasets("image_folder", root=tmp_path)
    assert str(tmp_path / "a" / "0.png") in str(info.value)


def test_empty_class_folder(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"full": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(
        DataError, match=r"holds no PNG or JPEG images\. Add images to it or remove it"
    ) as info:
        create_datasets("image_folder", root=tmp_path)
    assert str(tmp_path / "empty") in str(info.value)


def test_corrupt_image_named(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    bad = tmp_path / "b" / "001.png"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(DataError, match="not a readable PNG or JPEG") as info:
        create_datasets("image_folder", root=tmp_path)
    assert str(bad) in str(info.value)


def test_unknown_class_in_test_folder(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "train", {"a": 2, "b": 2})
    write_class_folders(tmp_path / "test", {"a": 1, "zebra": 1})
    with pytest.raises(DataError, match="zebra is a class that the training folder does not have"):
        create_datasets("image_folder", root=tmp_path)


def test_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs root"):
        create_datasets("image_folder")
    with pytest.raises(DataError, match="does not exist"):
        create_datasets("image_folder", root=tmp_path / "nope")
    with pytest.raises(DataError, match="holds no class folders"):
        create_datasets("image_folder", root=tmp_path)


def test_non_image_files_skipped_with_warning(tmp_path: Path, caplog) -> None:
    write_class_folders(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "README.txt").write_text("x")
    (tmp_path / "a" / ".DS_Store").write_text("x")
    with caplog.at_level(logging.WARNING, logger="finetune_kit.data"):
        data = create_datasets("image_folder", root=tmp_path, val_fraction=0, test_fraction=0.25)
    assert len(data.train) + len(data.test) == 8
    assert "skipped 1 non-PNG/JPEG" in caplog.text


def test_cache_round_trip(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "imgs", {"a": 4, "b": 4})
    first = create_datasets("image_folder", root=tmp_path / "imgs", cache=True, val_fraction=0)
    cached = list((cache_dir() / "image_folder").glob("*.pt"))
    assert len(cached) == 1
    second = create_datasets("image_folder", root=tmp_path / "imgs", cache=True, val_fraction=0)
    assert torch.equal(first.train.images, second.train.images)
    write_png(image(99), str(tmp_path / "imgs" / "a" / "new.png"))  # changes the key
    third = create_datasets("image_folder", root=tmp_path / "imgs", cache=True, val_fraction=0)
    assert len(third.train) + len(third.test) == 9
    assert len(list((cache_dir() / "image_folder").glob("*.pt"))) == 2


def test_class_index_saved(tmp_path: Path) -> None:
    import json

    write_class_folders(tmp_path / "imgs", {"b_second": 3, "a_first": 3})
    data = create_datasets("image_folder", root=tmp_path / "imgs", val_fraction=0)
    path = data.save_class_index(tmp_path / "run" / "classes.json")
    assert json.loads(path.read_text()) == {"0": "a_first", "1": "b_second"}
    assert data.meta()["class_names"] == ["a_first", "b_second"]


def test_auto_preset_augments_by_image_size(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "big", {"x": 3, "y": 3}, c=3, h=64, w=72)
    photos = create_datasets("image_folder", root=tmp_path / "big", val_fraction=0, test_fraction=0.34)
    assert photos.preset.name == "photo" and photos.input_size == (64, 72)
    transform = photos.preset.train_transform(photos.image_size)
    assert tuple(transform(photos.train.images[0]).shape) == (3, 64, 72)  # RandomResizedCrop at stored size
