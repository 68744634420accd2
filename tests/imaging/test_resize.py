"""resize_uint8 and resize_center_crop_array against the PyTorch path's resizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from finetune_kit.data.augment import resize_center_crop
from finetune_kit.imaging import resize_center_crop_array, resize_uint8

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((1, 40, 40), (28, 28)), ((3, 28, 28), (32, 32)), ((3, 100, 60), (28, 28)), ((1, 7, 5), (28, 28))],
)
def test_uint8_resize_is_torchvisions_within_one_grey_level(shape, size):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    ours = resize_uint8(image, size)
    theirs = TF.resize(torch.from_numpy(image), list(size), antialias=True).numpy()
    assert ours.shape == theirs.shape == (shape[0], *size) and ours.dtype == np.uint8
    gap = np.abs(ours.astype(int) - theirs.astype(int))
    assert gap.max() <= 1 and (gap > 0).mean() < 0.25  # both round fixed-point sums, differently


def test_uint8_resize_to_the_same_size_is_the_image():
    image = RNG.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    assert resize_uint8(image, (8, 8)) is image


@pytest.mark.parametrize(
    ("shape", "size"), [((2, 3, 28, 40), 64), ((1, 1, 32, 32), 224), ((1, 3, 50, 30), 24)]
)
def test_float_resize_center_crop_matches_the_library(shape, size):
    x = RNG.standard_normal(shape).astype(np.float32)
    ours = resize_center_crop_array(x, size)
    theirs = resize_center_crop(torch.from_numpy(x), size).numpy()
    assert ours.shape == theirs.shape == (*shape[:2], size, size)
    assert np.abs(ours - theirs).max() < 1e-4
