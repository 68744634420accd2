"""decode_array: the same pixels as the PyTorch path's decode_file, for every image mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finetune_kit.data.images import decode_file
from finetune_kit.errors import ConfigError, DataError
from finetune_kit.imaging import check_image_files, decode_array

RNG = np.random.default_rng(0)


def images(tmp_path: Path) -> list[Path]:
    """One file per Pillow mode the decoder converts (gray, RGB, alpha, palette, 16-bit, JPEG)."""
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    made = {
        "gray.png": Image.fromarray(rgb[..., 0], "L"),
        "rgb.png": Image.fromarray(rgb, "RGB"),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"),
        "la.png": Image.fromarray(rgb[..., 0], "L").convert("LA"),
        "palette.png": Image.fromarray(rgb, "RGB").convert("P"),
        "wide.png": Image.fromarray(RNG.integers(0, 65535, (6, 5), dtype=np.uint16)),
        "photo.jpg": Image.fromarray(rgb, "RGB"),
    }
    for name, image in made.items():
        image.save(tmp_path / name)
    return [tmp_path / name for name in made]


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_same_pixels_as_the_torch_decoder(tmp_path, channels):
    for path in images(tmp_path):
        array = decode_array(path, in_channels=channels)
        assert array.dtype == np.uint8 and array.flags.c_contiguous and array.flags.writeable
        assert torch.equal(torch.from_numpy(array), decode_file(path, in_channels=channels)), path.name
        if channels is not None:
            assert array.shape[0] == channels


def test_grayscale_stays_one_channel_and_colour_becomes_rgb(tmp_path):
    shapes = {p.name: decode_array(p).shape[0] for p in images(tmp_path)}
    assert shapes == {
        "gray.png": 1,
        "rgb.png": 3,
        "rgba.png": 3,
        "la.png": 1,
        "palette.png": 3,
        "wide.png": 1,
        "photo.jpg": 3,
    }


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        decode_array(tmp_path / "gone.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"bad\.png is not a readable PNG or JPEG"):
        decode_array(tmp_path / "bad.png")
    with pytest.raises(ConfigError, match="in_channels=4"):
        decode_array(tmp_path / "bad.png", in_channels=4)
    with pytest.raises(DataError, match="No images"):
        check_image_files([])
    with pytest.raises(DataError, match=r"gone\.png does not exist"):
        check_image_files([tmp_path / "bad.png", tmp_path / "gone.png"])
