"""load_images / decode_file: channels, sizes, alpha, 16-bit, and named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finetune_kit.data.images import decode_file, load_images
from finetune_kit.errors import ConfigError, DataError


def test_rgb_png_pixel_exact(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    out = load_images([tmp_path / "x.png"], in_channels=3, image_size=(5, 7))
    assert torch.equal(out[0], torch.from_numpy(array).permute(2, 0, 1))


def test_gray_to_rgb_and_rgb_to_gray(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 77, np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8)).save(tmp_path / "r.png")
    assert load_images([tmp_path / "g.png"], in_channels=3, image_size=4).unique().tolist() == [77]
    red = load_images([tmp_path / "r.png"], in_channels=1, image_size=4)
    assert red.shape == (1, 1, 4, 4) and red.unique().tolist() == [76]  # 0.299 * 255


def test_alpha_dropped_and_sixteen_bit(tmp_path: Path) -> None:
    Image.new("RGBA", (3, 3), (10, 20, 30, 0)).save(tmp_path / "a.png")
    assert decode_file(tmp_path / "a.png")[:, 0, 0].tolist() == [10, 20, 30]
    wide = Image.fromarray(np.full((2, 2), 0x8000, np.uint16))
    wide.save(tmp_path / "w.png")
    assert decode_file(tmp_path / "w.png").unique().tolist() == [128]


def test_resize_to_image_size(tmp_path: Path) -> None:
    Image.new("RGB", (40, 20)).save(tmp_path / "big.jpg")
    assert load_images([tmp_path / "big.jpg"], in_channels=3, image_size=(8, 12)).shape == (
        1,
        3,
        8,
        12,
    )


def test_missing_and_corrupt_files_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        load_images([tmp_path / "gone.png"], in_channels=1, image_size=4)
    assert str(tmp_path / "gone.png") in str(info.value)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="not a readable PNG or JPEG") as info:
        load_images([tmp_path / "bad.png"], in_channels=1, image_size=4)
    assert str(tmp_path / "bad.png") in str(info.value)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no paths"):
        load_images([], in_channels=1, image_size=4)
    with pytest.raises(ConfigError, match="in_channels=2"):
        decode_file(tmp_path / "x.png", in_channels=2)
