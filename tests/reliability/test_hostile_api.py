"""Hostile API arguments: what a tired user (or a script fed bad data) passes to the functions.

The checks every case passes are described in tests/reliability/hostile.py; here the refusal
is a typed :class:`~finetune_kit.FinetuneKitError` of the class the case names.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import finetune_kit as fk
from finetune_kit.config import load_config
from finetune_kit.data import load_images
from finetune_kit.data.images import decode_file
from finetune_kit.storage.run_dir import RunDir
from tests.reliability.hostile import CONFIG, Ctx, api_refusal, digest, says

X = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
Y = np.arange(20) % 2
META = {
    "class_names": ["a", "b", "c"],
    "in_channels": 1,
    "image_size": [16, 16],
    "input_size": [16, 16],
    "mean": [0.5],
    "std": [0.25],
}


def case(kind, id, make, words, error=fk.FinetuneKitError):
    return pytest.param(make, words, error, id=f"{kind}/{id}")


def tensors(train, **kwargs):
    return lambda c: lambda: fk.create_datasets("tensors", train=train, val_fraction=0, **kwargs)


def fake(**options):
    base = {"train_size": 20, "test_size": 4, "val_fraction": 0}
    return lambda c: lambda: fk.create_datasets("fake", **{**base, **options})


def lenet(**kwargs):
    return fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16, **kwargs)


def predict_meta(**changes):
    meta = {**META, **changes}
    net = lenet()
    images = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    return lambda c: lambda: fk.predict(net, images, meta=meta)


def fit(data_factory, **options):
    """Trainer.fit on data that must be refused before the run directory is written."""

    def make(c: Ctx):
        data = data_factory()
        trainer = fk.Trainer(
            convnet(), data, epochs=1, progress=False, device="cpu", output_dir=str(c.out), **options
        )
        return trainer.fit

    return make


def convnet():
    return fk.create_model("convnet", num_classes=2, in_channels=1, input_size=8)


def flat_data():
    x = np.full((20, 8, 8), 77, np.uint8)
    return fk.create_datasets("tensors", train=(x, Y), test=(x[:4], Y[:4]), val_fraction=0)


def good_data():
    return fk.create_datasets("tensors", train=(X, Y), test=(X[:4], Y[:4]), val_fraction=0)


DATA_CASES = [
    case(
        "arrays",
        "complex-images",
        tensors((X.astype(np.complex64), Y)),
        "train images hold complex numbers | magnitude",
        fk.DataError,
    ),
    case(
        "arrays",
        "complex-labels",
        tensors((X, Y.astype(np.complex128))),
        "train labels hold complex numbers",
        fk.DataError,
    ),
    case(
        "arrays",
        "text-images",
        tensors((np.array([["a"] * 8] * 8), Y)),
        "cannot be read as an array of numbers | numpy array",
        fk.DataError,
    ),
    case(
        "arrays",
        "object-images",
        tensors((np.array([None] * 20, dtype=object), Y)),
        "cannot be read as an array of numbers",
        fk.DataError,
    ),
    case(
        "arrays",
        "text-labels",
        tensors((X, np.array(["cat", "dog"] * 10))),
        "train labels cannot be read as an array of numbers",
        fk.DataError,
    ),
    case(
        "arrays",
        "bool-labels",
        tensors((X, Y.astype(bool))),
        "1-d array of integer class indices | bool",
        fk.DataError,
    ),
    case(
        "arrays",
        "ragged-images",
        tensors(([np.zeros((8, 8)), np.zeros((4, 4))], Y[:2])),
        "cannot be read as an array of numbers",
        fk.DataError,
    ),
    case("fake", "image-size-huge", fake(image_size=10**6), "image_size=1000000 | [1, 8192]", fk.ConfigError),
    case("fake", "image-size-one", fake(image_size=(16,)), "image_size=(16,) | pair (h, w)", fk.ConfigError),
    case("fake", "image-size-text", fake(image_size="16"), "image_size='16'", fk.ConfigError),
    case("fake", "image-size-bool", fake(image_size=True), "image_size=true", fk.ConfigError),
    case(
        "fake",
        "train-size-huge",
        fake(train_size=10**12),
        "train_size=1000000000000 | [1, 10,000,000]",
        fk.ConfigError,
    ),
    case("fake", "classes-text", fake(num_classes="3"), "num_classes='3'", fk.ConfigError),
    case(
        "fake", "channels-bool", fake(in_channels=True), "in_channels=true: expected 1 or 3", fk.ConfigError
    ),
    case(
        "fake",
        "memory",
        fake(train_size=5_000_000, image_size=64, in_channels=3),
        "gib of memory | fewer or smaller images",
        fk.ConfigError,
    ),
    case(
        "seed",
        "datasets-huge",
        fake(seed=2**70),
        "seed=1180591620717411303424 | [0, 2**64 - 1]",
        fk.ConfigError,
    ),
    case("seed", "datasets-negative", fake(seed=-1), "seed=-1 | out of range", fk.ConfigError),
    case("seed", "datasets-text", fake(seed="0"), "seed='0' | e.g. seed=0", fk.ConfigError),
    case(
        "seed",
        "model-huge",
        lambda c: lambda: lenet(seed=2**64),
        "seed=18446744073709551616 | 64 bits",
        fk.ConfigError,
    ),
    case(
        "seed", "model-bool", lambda c: lambda: lenet(seed=True), "seed=true | out of range", fk.ConfigError
    ),
    case(
        "seed",
        "trainer-huge",
        fit(good_data, seed=2**64),
        "seed=18446744073709551616 | [0, 2**64 - 1]",
        fk.ConfigError,
    ),
    case(
        "arrays",
        "constant-images",
        fit(flat_data),
        "normalisation std of channel 0 is 0.0 | check that the right images",
        fk.DataError,
    ),
]


IMAGE_CASES = [
    case(
        "images",
        "workers-zero",
        lambda c: lambda: load_images([c.world.image], in_channels=1, image_size=8, num_workers=0),
        "num_workers=0 | integer >= 1",
        fk.ConfigError,
    ),
    case(
        "images",
        "workers-negative",
        lambda c: lambda: load_images([c.world.image], in_channels=1, image_size=8, num_workers=-4),
        "num_workers=-4",
        fk.ConfigError,
    ),
    case(
        "images",
        "size-zero",
        lambda c: lambda: load_images([c.world.image], in_channels=1, image_size=0),
        "image_size=0 | [1, 8192]",
        fk.ConfigError,
    ),
    case(
        "images",
        "size-three",
        lambda c: lambda: load_images([c.world.image], in_channels=1, image_size=(8, 8, 8)),
        "image_size=(8, 8, 8)",
        fk.ConfigError,
    ),
    case(
        "images",
        "decode-nul",
        lambda c: lambda: decode_file("ima\0ge.png"),
        "image='ima\\x00ge.png' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "images",
        "decode-bytes-path",
        lambda c: lambda: decode_file(b"image.png"),
        "image must be a path (a string) | bytes",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-std-zero",
        predict_meta(std=[0.0]),
        "meta.std[0] must be a finite number > 0 | databundle.meta()",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-mean-nan",
        predict_meta(mean=[float("nan")]),
        "meta.mean[0] must be a finite number",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-names-numbers",
        predict_meta(class_names=[1, 2, 3]),
        "meta.class_names[0] must be a text",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-image-size",
        predict_meta(image_size=[10**5, 16]),
        "meta.image_size[0] | [1, 8192]",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-channels",
        predict_meta(in_channels="1"),
        "meta.in_channels must be an integer",
        fk.ConfigError,
    ),
    case(
        "predict",
        "meta-a-list",
        lambda c: lambda: fk.predict(lenet(), torch.zeros(1, 1, 16, 16, dtype=torch.uint8), meta=[1]),
        "meta must be a dict",
        fk.ConfigError,
    ),
]


PATH_CASES = [
    case(
        "paths",
        "load-model-nul",
        lambda c: lambda: fk.load_model("exp\0ort"),
        "source='exp\\x00ort' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "paths",
        "load-model-number",
        lambda c: lambda: fk.load_model(42),
        "source must be a path (a string) | int",
        fk.ConfigError,
    ),
    case(
        "paths",
        "export-nul",
        lambda c: lambda: fk.export(c.world.run, "ou\0t"),
        "path='ou\\x00t' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "paths",
        "checkpoint-nul",
        lambda c: lambda: fk.evaluate_checkpoint("ru\0n", device="cpu"),
        "checkpoint='ru\\x00n' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "paths",
        "run-dir-nul",
        lambda c: lambda: RunDir.create(c.tmp / "o\0ut"),
        "output_dir=",
        fk.ConfigError,
    ),
    case(
        "paths",
        "trainer-output-nul",
        lambda c: lambda: fk.Trainer(convnet(), good_data(), output_dir="ru\0ns").fit(),
        "output_dir='ru\\x00ns' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "paths",
        "config-nul",
        lambda c: lambda: load_config("run\0.toml"),
        "contains a nul byte | retype",
        fk.ConfigError,
    ),
    case(
        "paths",
        "config-bom",
        lambda c: (lambda p: lambda: load_config(p))(c.write("bom.toml", b"\xef\xbb\xbf" + CONFIG.encode())),
        "byte-order mark (bom)",
        fk.ConfigError,
    ),
    case(
        "paths",
        "mnist-root-nul",
        lambda c: lambda: fk.create_datasets("mnist", root="da\0ta", download=False),
        "root='da\\x00ta' contains a nul byte",
        fk.ConfigError,
    ),
    case(
        "paths",
        "weights-nul",
        lambda c: lambda: lenet(weights="w\0.pth"),
        "weights='w\\x00.pth' contains a nul byte",
        fk.ConfigError,
    ),
]


@pytest.mark.parametrize(("make", "words", "error"), DATA_CASES + IMAGE_CASES + PATH_CASES)
def test_hostile_argument_is_refused_clearly(ctx, make, words, error):
    call = make(ctx)
    before = digest(ctx.tmp, ctx.world.root, skip=ctx.out)
    says(api_refusal(call, error), words)
    assert digest(ctx.tmp, ctx.world.root, skip=ctx.out) == before, "a file outside the run directory changed"
    assert not ctx.out.exists() or not any(ctx.out.iterdir())
