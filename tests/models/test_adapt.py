"""finetune_kit.models heads and input adaptation: head swaps, channel and stem rules."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.models import (
    adapt_input_channels,
    adapt_small_input,
    create_model,
    get_head,
    model_info,
    replace_head,
)
from finetune_kit.models.adapt import adapt_channels, find_input_conv, resample_kernel
from finetune_kit.models.info import update_model_info

FAMILIES = {
    "resnet18": "fc",
    "mobilenet_v3_small": "classifier.3",
    "efficientnet_b0": "classifier.1",
    "vgg11_bn": "classifier.6",
    "convnet": "fc2",
    "lenet": "fc3",
    "resnet9": "fc",
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tests are tiny, and spinning threads only slow down a busy CI."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("name", "head"), FAMILIES.items())
def test_replace_head_keeps_every_other_tensor_bit_identical(name, head):
    model = create_model(name, num_classes=10, seed=11)  # stands in for pretrained weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    replace_head(model, 7, seed=0)
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if key.startswith(f"{head}."):
            assert after[key].shape[0] == 7
        else:
            assert torch.equal(value, after[key]), key
    assert get_head(model)[0] == head and model_info(model).num_classes == 7


def test_new_head_depends_only_on_seed():
    a = replace_head(create_model("resnet9", num_classes=10, seed=1), 5, seed=3).fc
    b = replace_head(create_model("resnet9", num_classes=10, seed=2), 5, seed=3).fc
    c = replace_head(create_model("resnet9", num_classes=10, seed=1), 5, seed=4).fc
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    bound = 1 / 512**0.5
    assert a.weight.abs().max() <= bound and a.weight.std() > bound / 3


def test_get_head_on_plain_modules():
    assert get_head(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)))[0] == "2"
    with pytest.raises(ShapeError, match="Cannot find the classification head"):
        get_head(nn.Conv2d(1, 2, 3))
    with pytest.raises(ConfigError, match="num_classes must be"):
        replace_head(create_model("lenet", num_classes=2), 0)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vgg11_bn"])
def test_gray_input_through_adapted_model_matches_rgb_original(name):
    model = create_model(name, num_classes=7).eval()
    gray_model = adapt_input_channels(copy.deepcopy(model), 1)
    assert find_input_conv(gray_model)[1].in_channels == 1
    assert model_info(gray_model).in_channels == 1
    image = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            gray_model(image), model(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5
        )


@settings(max_examples=25, deadline=None)
@given(
    out=st.integers(1, 4),
    channels=st.integers(1, 4),
    kernel=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_one_channel_rule_equals_replicated_input(out, channels, kernel, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, channels, kernel, kernel, generator=gen, dtype=torch.float64)
    gray = torch.randn(2, 1, 7, 7, generator=gen, dtype=torch.float64)
    expected = F.conv2d(gray.expand(-1, channels, -1, -1), weight)
    torch.testing.assert_close(F.conv2d(gray, adapt_channels(weight, 1)), expected)


@settings(max_examples=25, deadline=None)
@given(repeats=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_n_channel_rule_keeps_scale_for_repeated_channels(repeats, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    rgb = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    adapted = adapt_channels(weight, 3 * repeats)
    assert adapted.shape == (4, 3 * repeats, 3, 3)
    torch.testing.assert_close(F.conv2d(rgb.repeat(1, repeats, 1, 1), adapted), F.conv2d(rgb, weight))


def test_n_channel_rule_repeats_cyclically_and_rescales():
    weight = torch.arange(3.0).reshape(1, 3, 1, 1)
    assert adapt_channels(weight, 2).flatten().tolist() == [0.0, 1.5]
    assert adapt_channels(weight, 4).flatten().tolist() == [0.0, 0.75, 1.5, 0.0]


@settings(max_examples=40, deadline=None)
@given(src=st.integers(1, 9), dst=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_resample_kernel_preserves_each_filter_sum(src, dst, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 2, src, src, generator=gen, dtype=torch.float64)
    resampled = resample_kernel(weight, (dst, dst))
    assert resampled.shape == (3, 2, dst, dst)
    torch.testing.assert_close(resampled.sum((2, 3)), weight.sum((2, 3)))
    if src == dst:
        torch.testing.assert_close(resampled, weight)


def test_resample_7_to_3_by_hand():
    weight = torch.zeros(1, 1, 7, 7)
    weight[0, 0, 3, 3] = 1.0  # the centre tap straddles the middle cell [7/3, 14/3) fully
    weight[0, 0, 0, 0] = 1.0  # a corner tap lies in the corner cell
    weight[0, 0, 2, 0] = 1.0  # row 2 is split 1/3 into cell 0 and 2/3 into cell 1
    out = resample_kernel(weight, (3, 3))[0, 0]
    expected = torch.tensor([[1 + 1 / 3, 0, 0], [2 / 3, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(out, expected)


def test_small_input_stem_and_idempotence():
    model = create_model("resnet18", num_classes=3)
    kernel = model.conv1.weight.detach().clone()
    adapt_small_input(model)
    torch.testing.assert_close(model.conv1.weight.sum((2, 3)), kernel.sum((2, 3)))
    assert model_info(model).input_size == (32, 32)
    assert model_info(model).build_kwargs["small_input"] is True
    once = model.conv1.weight.detach().clone()
    adapt_small_input(model)
    torch.testing.assert_close(model.conv1.weight, once)
    with pytest.raises(ConfigError, match="applies to torchvision ResNets"):
        adapt_small_input(create_model("mobilenet_v3_small", num_classes=3))


def test_adapt_channels_updates_info_stats():
    model = create_model("lenet", num_classes=3)
    update_model_info(model, mean=(0.1, 0.2, 0.3), std=(0.3, 0.3, 0.3))
    adapt_input_channels(model, 1)
    assert model_info(model).mean == (0.2,) and model_info(model).std == (0.3,)
    assert model_info(model).build_kwargs["in_channels"] == 1
    with pytest.raises(ConfigError, match="in_channels must be"):
        adapt_input_channels(model, 0)
