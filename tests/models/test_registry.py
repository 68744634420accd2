"""finetune_kit.models: registry, create_model, every built-in model, ModelInfo, summaries."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError, ShapeError, UnknownNameError
from finetune_kit.models import (
    MODELS,
    DropoutLinear,
    ModelInfo,
    create_model,
    get_head,
    list_models,
    model_info,
    model_summary,
    register_model,
)

BUILTINS = [
    "bn_convnet",
    "convnet",
    "efficientnet_b0",
    "lenet",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet9",
    "vgg11_bn",
    "wide_resnet50_2",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tests are tiny, and spinning threads only slow down a busy CI."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cases():
    """in_channels 3 and 1 for every model; the gray build of a ResNet also takes the stem."""
    for name in list_models():
        small = MODELS.get(name).small_input == "stem"
        yield pytest.param(name, 3, False, id=f"{name}-rgb")
        yield pytest.param(name, 1, small, id=f"{name}-gray" + ("-small" if small else ""))


@pytest.mark.parametrize(("name", "in_channels", "small_input"), list(_cases()))
def test_every_model_trains_at_its_smallest_input(name, in_channels, small_input):
    model = create_model(name, num_classes=7, in_channels=in_channels, small_input=small_input)
    info = model_info(model)
    assert (info.name, info.num_classes, info.in_channels) == (name, 7, in_channels)
    x = torch.randn(2, in_channels, *info.min_input_size)
    out = model(x)
    assert out.shape == (2, 7)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    head_name, head = get_head(model)
    assert head_name == info.head and head.out_features == 7
    assert info.stages[-1] == ("head", (info.head,))
    stage_params = {
        id(p) for _, mods in info.stages for m in mods for p in model.get_submodule(m).parameters()
    }
    assert stage_params == {id(p) for p in model.parameters()}


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(list_models())
    assert list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50", "resnet9"]


def test_unknown_model_lists_choices():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'resnet18'.*convnet"):
        create_model("resnt18", num_classes=2)


def test_build_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = create_model("resnet9", num_classes=5, seed=3).state_dict()
    b = create_model("resnet9", num_classes=5, seed=3).state_dict()
    c = create_model("resnet9", num_classes=5, seed=4).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet18", {"in_channels": 1, "small_input": True, "dropout": 0.2, "seed": 5}),
        ("convnet", {"in_channels": 1, "input_size": 32}),
        ("mobilenet_v3_small", {"in_channels": 4}),
    ],
)
def test_build_kwargs_rebuild_the_same_model(name, kwargs):
    model = create_model(name, num_classes=3, **kwargs)
    info = model_info(model)
    again = create_model(info.name, **info.build_kwargs)
    assert model_info(again) == info
    state, other = model.state_dict(), again.state_dict()
    assert state.keys() == other.keys()
    assert all(torch.equal(state[k], other[k]) for k in state)


def test_small_input_resnet_stem_and_info():
    model = create_model("resnet18", num_classes=10, in_channels=1, small_input=True)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    info = model_info(model)
    assert info.input_size == (32, 32)
    assert info.stages[0] == ("stem", ("conv1", "bn1", "relu", "maxpool"))
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_small_input_is_refused_where_it_does_not_apply_and_noop_for_small_nets():
    with pytest.raises(ConfigError, match="small_input=True is not available for 'vgg11_bn'"):
        create_model("vgg11_bn", num_classes=2, small_input=True)
    plain = create_model("lenet", num_classes=2).state_dict()
    small = create_model("lenet", num_classes=2, small_input=True).state_dict()
    assert all(torch.equal(plain[k], small[k]) for k in plain)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"num_classes": 2, "in_channels": 0}, "in_channels must be an integer >= 1"),
        ({"num_classes": 2, "dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"num_classes": 2, "small_input": "yes"}, "small_input must be True or False"),
        ({"num_classes": 2, "seed": -1}, "seed=-1 is out of range"),
        ({"num_classes": 2, "inpt_size": 28}, "no option 'inpt_size'. Did you mean 'input_size'"),
        ({"num_classes": 2, "input_size": 4}, "input_size must be an integer >= 6"),
        ({"num_classes": 2, "pretrained": True, "weights": "x.pth"}, "either pretrained=True"),
        ({"num_classes": 2, "in_chans": 1, "in_channels": 4}, "in_chans=1 and in_channels=4"),
    ],
)
def test_bad_arguments_raise_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("convnet", **kwargs)


def test_timm_aliases():
    model = create_model("resnet18", num_classes=3, in_chans=1, pretrained=False)
    assert model.conv1.in_channels == 1 and model_info(model).weights is None


def test_convnet_is_the_mnist_recipe_and_checks_its_input_size():
    model = create_model("convnet", num_classes=10, in_channels=1)
    assert (model.conv1.out_channels, model.conv2.out_channels) == (32, 64)
    assert (model.fc1.in_features, model.fc1.out_features) == (9216, 128)
    assert (model.dropout1.p, model.dropout2.p) == (0.25, 0.5)
    assert [s for s, _ in model_info(model).stages] == ["conv1", "conv2", "fc1", "head"]
    with pytest.raises(ShapeError, match=r"built for 28x28 inputs and got 32x32.*input_size"):
        model(torch.zeros(1, 1, 32, 32))
    bigger = create_model("convnet", num_classes=10, in_channels=1, input_size=32)
    assert model_info(bigger).input_size == (32, 32)
    assert bigger(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_lenet_and_resnet9_layouts():
    lenet = create_model("lenet", num_classes=10)
    shapes = [(m.in_channels, m.out_channels, m.kernel_size) for m in (lenet.conv1, lenet.conv2)]
    assert shapes == [(3, 6, (5, 5)), (6, 16, (5, 5))]
    assert [lenet.fc1.out_features, lenet.fc2.out_features, lenet.fc3.out_features] == [120, 84, 10]
    net = create_model("resnet9", num_classes=10, in_channels=1)
    assert [s for s, _ in model_info(net).stages] == ["prep", "layer1", "layer2", "layer3", "head"]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_bn_convnet_pools_before_batchnorm_and_runs_on_any_size():
    net = create_model("bn_convnet", num_classes=10, in_channels=1)
    assert [type(m).__name__ for m in net.block1] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert [net.block1[0].out_channels, net.block2[0].out_channels, net.block3[0].out_channels] == [
        16,
        32,
        64,
    ]
    assert sum(p.numel() for p in net.parameters()) == 29_178
    assert [s for s, _ in model_info(net).stages] == ["block1", "block2", "block3", "head"]
    for size in (8, 28, 32, 45):  # the adaptive pool feeds the head a 3x3 map at any size
        assert net(torch.zeros(2, 1, size, size)).shape == (2, 10)
    wide = create_model("bn_convnet", num_classes=5, in_channels=3, width=32)
    assert (wide.block3[0].out_channels, wide.fc.in_features) == (128, 128 * 9)
    assert model_info(wide).build_kwargs["width"] == 32
    with pytest.raises(ConfigError, match="width must be a positive integer"):
        create_model("bn_convnet", num_classes=10, width=0)


def test_dropout_goes_on_the_head_and_keeps_its_keys():
    model = create_model("resnet18", num_classes=4, dropout=0.3)
    assert isinstance(model.fc, DropoutLinear) and model.fc.p == 0.3
    assert {k for k in model.state_dict() if k.startswith("fc.")} == {"fc.weight", "fc.bias"}
    x = torch.ones(3, 512)
    assert torch.equal(model.fc.eval()(x), nn.functional.linear(x, model.fc.weight, model.fc.bias))
    assert not torch.equal(model.fc.train()(x), model.fc.eval()(x))


def test_user_model_registration():
    @register_model("test_tiny_cnn", input_size=(16, 16), min_input_size=(4, 4))
    def tiny(*, num_classes, in_channels, width=8):
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    try:
        model = create_model("test_tiny_cnn", num_classes=3, in_channels=2, width=4)
        info = model_info(model)
        assert (info.head, info.input_size, info.min_input_size) == ("4", (16, 16), (4, 4))
        # parameter-free layers join the stage before them
        assert info.stages == (("0", ("0", "1", "2", "3")), ("head", ("4",)))
        assert model(torch.zeros(2, 2, 4, 4)).shape == (2, 3)
        with pytest.raises(ConfigError, match=r"does not take dropout=0\.5"):
            create_model("test_tiny_cnn", num_classes=3, dropout=0.5)
        with pytest.raises(ConfigError, match="no option 'depth'"):
            create_model("test_tiny_cnn", num_classes=3, depth=2)
        with pytest.raises(ConfigError, match="names torchvision weights"):
            create_model("test_tiny_cnn", num_classes=3, weights="imagenet")
        with pytest.raises(ConfigError, match="already registered"):
            register_model("test_tiny_cnn", tiny)
    finally:
        MODELS.unregister("test_tiny_cnn")


def test_user_builder_must_take_num_classes_and_in_channels():
    with pytest.raises(ConfigError, match="must take a 'in_channels' keyword"):
        register_model("test_bad", lambda *, num_classes: nn.Linear(2, num_classes))
    assert "test_bad" not in MODELS


def test_model_info_round_trip_and_missing_info():
    info = model_info(create_model("resnet18", num_classes=3, small_input=True))
    assert ModelInfo.from_dict(info.to_dict()) == info
    hash(info)
    with pytest.raises(ConfigError, match="carries no finetune_kit ModelInfo"):
        model_info(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="Unknown ModelInfo keys"):
        ModelInfo.from_dict({**info.to_dict(), "colour": "red"})


def test_summary_counts_trainable_and_restores_modes():
    model = create_model("resnet18", num_classes=7, small_input=True)
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    model.bn1.eval()
    summary = model_summary(model)
    assert not model.bn1.training and model.layer2.training
    rows = {s.name: s for s in summary.stages}
    assert rows["layer1"].status == "frozen" and rows["layer2"].status == "trainable"
    assert rows["head"].output_shape == (1, 7) and rows["layer4"].output_shape == (1, 512, 4, 4)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.trainable_params == summary.total_params - rows["layer1"].params
    table = summary.table()
    assert "layer1" in table and "frozen" in table and "(1, 3, 32, 32)" in table


def test_summary_of_a_model_without_info():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    assert model_summary(net).input_shape is None
    summary = model_summary(net, (8, 8))
    assert [s.name for s in summary.stages] == ["0", "head"]
    assert summary.output_shape == (1, 2)
    with pytest.raises(ConfigError, match="input_size must be"):
        model_summary(net, (8,))


MODULES = [
    "__init__",
    "_checks",
    "_surgery",
    "adapt",
    "factory",
    "heads",
    "info",
    "load",
    "registry",
    "resnet9",
    "small_nets",
    "summary",
    "torchvision_models",
    "weights",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "finetune_kit.models" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
