"""The tensors dataset (user arrays) and the fake dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetune_kit.data import create_datasets
from finetune_kit.data.tensors import as_image_tensor
from finetune_kit.errors import ConfigError, DataError


def test_nhwc_numpy_uint8() -> None:
    x = np.random.default_rng(0).integers(0, 256, (12, 5, 6, 3), dtype=np.uint8)
    y = np.arange(12) % 3
    data = create_datasets("tensors", train=(x, y), test=(x[:3], y[:3]), val_fraction=0)
    assert torch.equal(data.train.images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert data.class_names == ["0", "1", "2"] and data.image_size == (5, 6)


def test_float_nchw_tensor_and_class_names() -> None:
    x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    data = create_datasets(
        "tensors", train=(x, torch.arange(10) % 2), class_names=["no", "yes"], val_fraction=0.2
    )
    assert data.test is None and data.class_names == ["no", "yes"] and len(data.val) == 2
    assert torch.equal(as_image_tensor(x), (x.double() * 255).round().to(torch.uint8))


def test_nhw_grayscale() -> None:
    assert as_image_tensor(np.zeros((2, 5, 5), np.uint8)).shape == (2, 1, 5, 5)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 5, 5, 5), np.uint8), "cannot tell the channel axis"),
        (np.full((2, 1, 3, 3), 1.5, np.float32), r"floats in \[1.5, 1.5\]"),
        (np.full((2, 1, 3, 3), 300, np.int32), "outside 0..255"),
        (np.zeros((2, 3), np.uint8), "must be"),
    ],
)
def test_bad_images(images, message: str) -> None:
    with pytest.raises(DataError, match=message):
        create_datasets("tensors", train=(images, np.zeros(2, np.int64)))


def test_bad_labels_and_pairs() -> None:
    x = np.zeros((4, 1, 2, 2), np.uint8)
    with pytest.raises(DataError, match="integer class indices"):
        create_datasets("tensors", train=(x, np.zeros(4, np.float32)))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        create_datasets("tensors", train=(x, np.zeros(3, np.int64)))
    with pytest.raises(DataError, match=r"label 5 is outside \[0, 2\)"):
        create_datasets("tensors", train=(x, np.array([0, 1, 5, 0])), class_names=["a", "b"])
    with pytest.raises(ConfigError, match="pair"):
        create_datasets("tensors", train=x)


def test_nchw_forced_layout() -> None:
    x = np.zeros((2, 3, 4, 3), np.uint8)  # ambiguous: channels at axis 1 and 3
    assert as_image_tensor(x, layout="nhwc").shape == (2, 3, 3, 4)
    assert as_image_tensor(x).shape == (2, 3, 4, 3)


def test_fake_is_learnable_and_named_fake() -> None:
    data = create_datasets("fake", train_size=200, test_size=50, in_channels=1, image_size=(6, 8))
    assert data.image_size == (6, 8) and data.in_channels == 1
    assert data.class_names == [f"fake_{i}" for i in range(10)] and data.name == "fake"
    means = torch.stack([data.train.images[data.train.targets == k].float().mean(0) for k in range(10)])
    nearest = ((data.test.images.float()[:, None] - means[None]) ** 2).flatten(2).sum(2).argmin(1)
    assert (nearest == data.test.targets).float().mean() > 0.9


def test_fake_bad_options() -> None:
    with pytest.raises(ConfigError, match="in_channels=2: expected 1 or 3"):
        create_datasets("fake", in_channels=2)
