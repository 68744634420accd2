"""ONNX and torch.export artifacts of every registered model reproduce it: logits from
onnxruntime (CPU) and from the saved program match the eval-mode PyTorch model within 1e-4
(float32), and top-1 agrees on real Fashion-MNIST for a trained model.

Each model is built at its preset input size (the ResNets with their 32-pixel stem; vgg11_bn at
32, the smallest its builder allows, since 224 would only slow the test) with a few classes,
and its BatchNorm layers get the statistics of a batch of images, as a trained network has: a
fresh network's identity statistics make deep ResNets' logits explode to about 1e7, where
float32 rounding alone exceeds any absolute tolerance. For the deepest ResNets, eager float32
PyTorch itself is more than 1e-4 from the float64 result; there the artifact must be as close
to the float64 result as eager float32 PyTorch is (within 4 times its own rounding).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import finetune_kit as fk
from finetune_kit.inference import OnnxModel

SLOW = pytest.mark.slow
# model -> (channels, input side, create_model options, marks)
CASES = {
    "bn_convnet": (1, 28, {}, ()),
    "convnet": (1, 28, {}, ()),
    "lenet": (1, 32, {}, ()),
    "resnet9": (3, 32, {}, ()),
    "resnet18": (3, 32, {"small_input": True}, ()),
    "resnet34": (3, 32, {"small_input": True}, (SLOW,)),
    "resnet50": (3, 32, {"small_input": True}, (SLOW,)),
    "resnet101": (3, 32, {"small_input": True}, (SLOW,)),
    "resnet152": (3, 32, {"small_input": True}, (SLOW,)),
    "wide_resnet50_2": (3, 32, {"small_input": True}, (SLOW,)),
    "mobilenet_v3_small": (3, 224, {}, (SLOW,)),
    "mobilenet_v3_large": (3, 224, {}, (SLOW,)),
    "efficientnet_b0": (3, 224, {}, (SLOW,)),
    "vgg11_bn": (3, 32, {}, (SLOW,)),
}
TOLERANCE = 1e-4


def test_every_registered_model_has_a_case():
    assert sorted(CASES) == fk.list_models()


def calibrated(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """``model`` in eval mode with BatchNorm running statistics averaged over ``images``."""
    for norm in model.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for chunk in images.split(8):
            model(chunk)
    return model.eval()


@pytest.mark.parametrize("name", [pytest.param(n, marks=CASES[n][3]) for n in CASES])
def test_onnx_and_torch_export_reproduce_the_model(name, tmp_path):
    channels, side, options, _ = CASES[name]
    if name in ("convnet", "lenet"):
        options = {"input_size": side}
    model = fk.create_model(name, num_classes=5, in_channels=channels, **options)
    gen = torch.Generator().manual_seed(0)
    model = calibrated(model, torch.randn(16, channels, side, side, generator=gen))
    meta = {
        "class_names": list("abcde"),
        "in_channels": channels,
        "image_size": [side, side],
        "input_size": [side, side],
        "mean": [0.5] * channels,
        "std": [0.25] * channels,
    }
    folder = fk.export(model, tmp_path, format="all", meta=meta, check=False, overwrite=True)

    x = torch.randn(5, channels, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(x)
        by_program = torch.export.load(folder / "model.pt2").module()(x)
    by_onnx = torch.from_numpy(OnnxModel(folder / "model.onnx").run(x.numpy()))
    assert reference.std() > 1e-2  # logits that differ, so agreeing on them means something
    assert float((by_program - reference).abs().max()) <= TOLERANCE
    assert torch.equal(by_onnx.argmax(1), reference.argmax(1))
    difference = float((by_onnx - reference).abs().max())
    if difference > TOLERANCE:  # allowed only where eager float32 PyTorch is itself that far off
        with torch.no_grad():
            exact = copy.deepcopy(model).double()(x.double())
        noise = float((reference.double() - exact).abs().max())
        assert difference <= 4 * noise, f"onnxruntime {difference:.1e}, float32 noise {noise:.1e}"


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, fashion_mnist_dir):
    """A convnet trained for 200 steps on real Fashion-MNIST, exported in every format."""
    full = fk.create_datasets("fashion_mnist", root=str(fashion_mnist_dir), val_fraction=0.0)
    n_train, n_test = 6400, 1000
    data = fk.create_datasets(
        "tensors",
        train=(full.train.images[:n_train], full.train.targets[:n_train]),
        test=(full.test.images[:n_test], full.test.targets[:n_test]),
        class_names=full.class_names,
        val_fraction=0.0,
        preset="fashion",
    )
    root = tmp_path_factory.mktemp("fashion")
    trainer = fk.Trainer(
        fk.create_model("convnet", num_classes=10, in_channels=1),
        data,
        epochs=1,
        batch_size=32,
        lr=0.05,
        scheduler="onecycle",
        ema=0.99,
        progress=False,
        output_dir=str(root / "run"),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU, spin-waiting intra-op threads slow training 5x
    try:
        trainer.fit()
    finally:
        torch.set_num_threads(threads)
    return trainer, fk.export(trainer.run_dir.root, root / "exported", format="all")


def test_top1_agrees_on_real_fashion_mnist(fashion_run):
    trainer, folder = fashion_run
    images = trainer.data.test.images
    by_torch = fk.predict(trainer.run_dir.root, images)  # the EMA weights, as exported
    by_onnx = fk.predict(folder / "model.onnx", images.numpy())
    accuracy = float((by_torch.indices == trainer.data.test.targets).float().mean())
    assert accuracy > 0.7, accuracy  # a trained model: chance is 0.1
    assert np.array_equal(by_onnx.indices, by_torch.indices.numpy())
    assert np.abs(by_onnx.logits - by_torch.logits.numpy()).max() <= TOLERANCE
    program = torch.export.load(folder / "model.pt2").module()
    transform = fk.data.eval_transform_from_meta(trainer.data.meta())
    with torch.no_grad():
        by_program = program(transform(images))
    assert torch.equal(by_program.argmax(1), by_torch.indices)
    assert float((by_program - by_torch.logits).abs().max()) <= TOLERANCE
