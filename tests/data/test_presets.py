"""Transform presets: the registry, auto choice, torchvision transforms, normalisation stats."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.data.presets import (
    IMAGENET_MEAN,
    PRESETS,
    get_preset,
    list_presets,
    normalization_stats,
    resolve_preset,
    weights_input_size,
)
from finetune_kit.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_transforms(name: str) -> None:
    preset = PRESETS.get(name)
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    for transform in (preset.train_transform((32, 32)), preset.eval_transform((32, 32))):
        out = x if transform is None else transform(x)
        assert out.dtype == torch.uint8 and out.shape[1:] == preset.input_size((32, 32))
    assert preset.description and preset.device_capable


@pytest.mark.parametrize(
    ("meta", "default", "channels", "size", "expected"),
    [
        ({"input_size": 224}, "fashion", 1, (28, 28), "imagenet"),
        ({"input_size": (3, 224, 224)}, None, 3, (32, 32), "imagenet"),
        ({"input_size": (32, 32)}, None, 3, (32, 32), "cifar"),
        (None, "fashion", 1, (28, 28), "fashion"),
        (None, None, 1, (28, 28), "mnist"),
        (None, None, 3, (64, 64), "none"),
    ],
)
def test_auto(meta, default, channels, size, expected: str) -> None:
    chosen = resolve_preset("auto", weights_meta=meta, default=default, in_channels=channels, image_size=size)
    assert chosen.name == expected


def test_explicit_and_unknown() -> None:
    assert (
        resolve_preset(
            "cifar",
            weights_meta={"input_size": 224},
            default=None,
            in_channels=3,
            image_size=(32, 32),
        ).name
        == "cifar"
    )
    assert get_preset(PRESETS.get("mnist")) is PRESETS.get("mnist")
    with pytest.raises(UnknownNameError, match="Available presets"):
        get_preset("cifar100")


def test_recipes() -> None:
    cifar, fashion, mnist, imagenet = (PRESETS.get(n) for n in ("cifar", "fashion", "mnist", "imagenet"))
    assert (cifar.padding_for((32, 32)), cifar.hflip) == (4, True)
    assert (fashion.padding_for((28, 28)), fashion.hflip) == (2, True)
    assert (mnist.padding_for((28, 28)), mnist.hflip) == (0, False)
    assert imagenet.input_size((32, 32)) == (224, 224) and imagenet.padding_for((32, 32)) == 4


def test_weights_input_size_forms() -> None:
    assert weights_input_size(None) is None and weights_input_size({}) is None
    assert weights_input_size({"input_size": [3, 224, 224]}) == 224
    assert weights_input_size({"input_size": 96}) == 96


def test_normalization_stats() -> None:
    data = ((0.3,), (0.2,))
    assert (
        normalization_stats(PRESETS.get("cifar"), dataset_stats=data, weights_meta=None, in_channels=1)
        == data
    )
    imagenet = PRESETS.get("imagenet")
    assert (
        normalization_stats(imagenet, dataset_stats=data, weights_meta=None, in_channels=3)[0]
        == IMAGENET_MEAN
    )
    one = normalization_stats(imagenet, dataset_stats=data, weights_meta=None, in_channels=1)
    assert one[0] == pytest.approx((sum(IMAGENET_MEAN) / 3,))
    three = normalization_stats(
        imagenet, dataset_stats=data, weights_meta={"mean": [0.5], "std": [0.5]}, in_channels=3
    )
    assert three == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="1 or 3 values"):
        normalization_stats(imagenet, dataset_stats=data, weights_meta={"mean": [0.1, 0.2]}, in_channels=3)
