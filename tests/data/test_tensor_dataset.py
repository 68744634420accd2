"""ImageTensorDataset validates at construction and converts channels."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.data.tensor_dataset import ImageTensorDataset, convert_channels
from finetune_kit.errors import ConfigError, DataError


def make(n: int = 4, c: int = 1) -> ImageTensorDataset:
    images = torch.arange(n * c * 9, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, c, 3, 3)
    return ImageTensorDataset(images, torch.arange(n) % 2, ["a", "b"], source="demo.bin")


def test_item_and_properties() -> None:
    ds = make()
    x, y = ds[3]
    assert x.dtype == torch.uint8 and x.shape == (1, 3, 3) and y == 1 and isinstance(y, int)
    assert (len(ds), ds.num_classes, ds.in_channels, ds.image_size) == (4, 2, 1, (3, 3))
    sub = ds.subset([3, 1])
    assert sub.targets.tolist() == [1, 1] and torch.equal(sub.images[0], ds.images[3])
    assert "demo.bin" in repr(ds)


@pytest.mark.parametrize(
    ("images", "targets", "message"),
    [
        (torch.zeros(2, 1, 3, 3), torch.tensor([0, 1]), "uint8 tensor of shape"),
        (torch.zeros(2, 3, 3, dtype=torch.uint8), torch.tensor([0, 1]), "uint8 tensor of shape"),
        (
            torch.zeros(0, 1, 3, 3, dtype=torch.uint8),
            torch.zeros(0, dtype=torch.int64),
            "no images",
        ),
        (torch.zeros(2, 2, 3, 3, dtype=torch.uint8), torch.tensor([0, 1]), "2 channels"),
        (
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
            torch.tensor([0, 1, 1]),
            "2 images but 3 labels",
        ),
        (
            torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
            torch.tensor([0, 2]),
            r"label 2 is outside \[0, 2\)",
        ),
        (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([-1, 0]), "label -1"),
        (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([0.0, 1.0]), "must be integers"),
        (torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.tensor([[0, 1]]), "1-D tensor"),
        ([[0]], torch.tensor([0]), "must be a torch.Tensor"),
    ],
)
def test_validation(images, targets, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        ImageTensorDataset(images, targets, ["a", "b"], source="file.x")
    assert "file.x" in str(info.value)


def test_convert_channels() -> None:
    gray = make()
    rgb = convert_channels(gray, 3)
    assert rgb.in_channels == 3 and torch.equal(rgb.images[:, 2], gray.images[:, 0])
    back = convert_channels(rgb, 1)
    assert torch.equal(back.images, gray.images)  # luma of a gray pixel is itself
    assert convert_channels(gray, 1) is gray
    with pytest.raises(ConfigError):
        convert_channels(gray, 2)
