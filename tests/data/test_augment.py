"""Device augmentation has the semantics of the torchvision transforms it replaces."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from finetune_kit.data.augment import (
    BatchTransform,
    crop_flip,
    eval_transform_from_meta,
    resize_center_crop,
    sample_crop_flip,
)


def images(seed: int, b: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.randint(
        0, 256, (b, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    b=st.integers(1, 5),
    c=st.sampled_from([1, 3]),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    padding=st.integers(0, 4),
    data=st.data(),
)
def test_crop_flip_equals_torchvision_pad_crop_hflip(seed, b, c, h, w, padding, data) -> None:
    x = images(seed, b, c, h, w)
    offsets = st.integers(0, 2 * padding)
    top = torch.tensor(data.draw(st.lists(offsets, min_size=b, max_size=b)))
    left = torch.tensor(data.draw(st.lists(offsets, min_size=b, max_size=b)))
    flip = torch.tensor(data.draw(st.lists(st.booleans(), min_size=b, max_size=b)))
    out = crop_flip(x, top, left, flip, padding=padding)
    for i in range(b):
        ref = TF.crop(TF.pad(x[i], [padding]), int(top[i]), int(left[i]), h, w)
        ref = TF.horizontal_flip(ref) if flip[i] else ref
        assert torch.equal(out[i], ref)


@settings(max_examples=10, deadline=None)
@given(padding=st.integers(1, 4), seed=st.integers(0, 1000))
def test_offsets_in_bounds_and_uniform(padding: int, seed: int) -> None:
    n = 20_000
    p = sample_crop_flip(n, padding=padding, flip=True, seed=seed, epoch=0)
    k = 2 * padding + 1
    for values in (p.top, p.left):
        assert int(values.min()) >= 0 and int(values.max()) <= 2 * padding
        counts = torch.bincount(values, minlength=k).double()
        expected = n / k
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < k - 1 + 6 * math.sqrt(2 * (k - 1))  # ~6 sigma of the chi-square


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_flip_probability_half(seed: int) -> None:
    n = 20_000
    flips = sample_crop_flip(n, padding=0, flip=True, seed=seed, epoch=1).flip
    assert abs(int(flips.sum()) - n / 2) < 6 * math.sqrt(n / 4)
    assert not sample_crop_flip(100, padding=0, flip=False, seed=seed, epoch=1).flip.any()


def test_torchvision_randomcrop_offsets_have_the_same_range() -> None:
    """Empirically: torchvision's RandomCrop(h, padding=p) hits exactly offsets 0..2p."""
    torch.manual_seed(0)
    transform = v2.RandomCrop(3, padding=2)
    x = torch.arange(9, dtype=torch.uint8).view(1, 3, 3) + 1
    seen = set()
    for _ in range(400):
        out = transform(x)
        padded = TF.pad(x, [2])
        for i in range(5):
            for j in range(5):
                if torch.equal(padded[:, i : i + 3, j : j + 3], out):
                    seen.add((i, j))
    assert seen == {(i, j) for i in range(5) for j in range(5)}


def test_params_prefix_stable_and_pure() -> None:
    a = sample_crop_flip(50, padding=4, flip=True, seed=3, epoch=2)
    b = sample_crop_flip(80, padding=4, flip=True, seed=3, epoch=2)
    assert (
        torch.equal(a.top, b.top[:50])
        and torch.equal(a.left, b.left[:50])
        and torch.equal(a.flip, b.flip[:50])
    )
    c = sample_crop_flip(50, padding=4, flip=True, seed=3, epoch=3)
    assert not torch.equal(a.top, c.top)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.sampled_from([1, 3]))
def test_normalise_equals_todtype_normalize(seed: int, c: int) -> None:
    x = images(seed, 4, c, 5, 6)
    mean, std = tuple(0.1 * (k + 1) for k in range(c)), tuple(0.2 + 0.05 * k for k in range(c))
    ours = BatchTransform(mean, std)(x)
    ref = v2.Normalize(mean, std)(v2.ToDtype(torch.float32, scale=True)(x))
    assert torch.equal(ours, ref)


@pytest.mark.parametrize(("h", "w", "size"), [(8, 8, 20), (6, 10, 12), (12, 7, 9), (16, 16, 16)])
def test_resize_center_crop_matches_torchvision(h: int, w: int, size: int) -> None:
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    ours = resize_center_crop(x, size)
    ref = TF.center_crop(TF.resize(x, size, antialias=True), [size, size])
    assert ours.shape == (2, 3, size, size)
    torch.testing.assert_close(ours, ref)


def test_batch_transform_channels_last_and_augment() -> None:
    x = images(0, 3, 3, 8, 8)
    t = BatchTransform((0.5,) * 3, (0.25,) * 3, padding=2, channels_last=True)
    params = sample_crop_flip(3, padding=2, flip=True, seed=0, epoch=0)
    out = t(x, params)
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = BatchTransform((0.5,) * 3, (0.25,) * 3)(
        crop_flip(x, params.top, params.left, params.flip, padding=2)
    )
    assert torch.equal(out, ref)


def test_eval_transform_from_meta_resizes_to_input_size() -> None:
    meta = {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "image_size": [32, 32],
        "input_size": [64, 64],
    }
    out = eval_transform_from_meta(meta)(images(1, 2, 3, 32, 32))
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
