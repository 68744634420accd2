"""predict with an ONNX file: the PyTorch path's table and top-k on the same images, clear
errors, and no PyTorch imported (checked in a fresh process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import finetune_kit as fk
from finetune_kit.errors import CheckpointError, ConfigError, DataError, ShapeError
from finetune_kit.inference import OnnxModel, predict
from finetune_kit.inference.onnx_predict import predict_onnx

LEVELS = (40, 120, 200, 90, 170)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Gray PNGs at the stored size (16x16) with noise, and one RGB PNG converted to gray."""
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    paths = []
    for i, level in enumerate(LEVELS):
        pixels = np.clip(level + rng.integers(-30, 31, (16, 16)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "L").save(root / f"gray{i}.png")
        paths.append(root / f"gray{i}.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB").save(root / "rgb.png")
    return [*paths, root / "rgb.png"]


def test_same_table_and_top_k_as_the_torch_path(artifacts, pngs):
    by_torch = predict(artifacts["dir"], pngs, top_k=2)
    by_onnx = predict(artifacts["onnx"], pngs, top_k=2)
    assert isinstance(by_onnx.logits, np.ndarray) and by_onnx.targets is None
    assert by_onnx.table() == by_torch.table()
    assert [[name for name, _ in row] for row in by_onnx.top(3)] == [
        [name for name, _ in row] for row in by_torch.top(3)
    ]
    assert by_onnx.names == by_torch.names
    assert np.array_equal(by_onnx.indices, by_torch.indices.numpy())
    assert np.abs(by_onnx.logits - by_torch.logits.numpy()).max() < 1e-4
    assert np.allclose(by_onnx.probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert by_onnx.sources == [str(p) for p in pngs]


def test_uint8_graph_gives_the_same_predictions(artifacts, pngs):
    by_float = predict(artifacts["onnx"], pngs)
    by_uint8 = predict(artifacts["uint8_onnx"], pngs)
    assert by_uint8.table() == by_float.table()
    assert np.abs(by_uint8.logits - by_float.logits).max() < 1e-5


def test_a_file_of_another_size_is_resized_as_by_pillow(artifacts, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "big.png"
    Image.fromarray(np.clip(120 + rng.integers(-40, 41, (40, 52)), 0, 255).astype(np.uint8), "L").save(path)
    by_torch, by_onnx = predict(artifacts["dir"], [path]), predict(artifacts["onnx"], [path])
    # Pillow and torchvision round the resized pixels differently by at most one grey level
    assert by_onnx.names == by_torch.names
    assert np.abs(by_onnx.probabilities - by_torch.probabilities.numpy()).max() < 0.01


def test_arrays_as_the_torch_path_takes_tensors(artifacts, deploy_run):
    images = deploy_run.data.test.images
    by_torch = predict(artifacts["dir"], images)
    by_onnx = predict(artifacts["onnx"], images.numpy(), batch_size=7)
    assert np.array_equal(by_onnx.indices, by_torch.indices.numpy())
    assert np.abs(by_onnx.logits - by_torch.logits.numpy()).max() < 1e-4
    assert by_onnx.sources[:2] == ["array[0]", "array[1]"]
    one = predict_onnx(OnnxModel(artifacts["onnx"]), images[3].numpy())
    assert len(one) == 1 and one.names == [by_torch.names[3]]
    assert predict(artifacts["onnx"], images[:4]).names == by_torch.names[:4]  # a CPU tensor


def test_model_input_size_other_than_the_stored_size(tmp_path):
    # the imagenet preset's case: stored 16x16 images, a model that takes 24x24
    meta = {
        "class_names": list("abcd"),
        "in_channels": 3,
        "image_size": [16, 16],
        "input_size": [24, 24],
        "mean": [0.4, 0.5, 0.6],
        "std": [0.2, 0.25, 0.3],
    }
    net = fk.create_model("lenet", num_classes=4, in_channels=3, input_size=24)
    torch.nn.init.normal_(net.fc3.weight, std=1.0)  # logits of a useful size
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    by_torch = predict(net.eval(), images, meta=meta)
    plain = fk.export(net, tmp_path / "f.onnx", format="onnx", meta=meta)
    uint8 = fk.export(net, tmp_path / "u.onnx", format="onnx", meta=meta, with_preprocessing=True)
    by_float = predict(plain, images.numpy())
    assert np.array_equal(by_float.indices, by_torch.indices.numpy())
    assert np.abs(by_float.logits - by_torch.logits.numpy()).max() < 1e-4
    # the uint8 graph gets the resized pixels rounded to whole grey levels
    by_uint8 = predict(uint8, images.numpy())
    assert np.abs(by_uint8.probabilities - by_torch.probabilities.numpy()).max() < 0.02


def test_bad_images_give_clear_errors(artifacts, tmp_path):
    onnx_path = artifacts["onnx"]
    with pytest.raises(ShapeError, match="have 3 channels but the model takes 1-channel"):
        predict(onnx_path, np.zeros((2, 3, 16, 16), np.uint8))
    with pytest.raises(ShapeError, match=r"are 20x16 but the model takes 16x16 \(height x width\)"):
        predict(onnx_path, np.zeros((2, 1, 20, 16), np.uint8))
    with pytest.raises(ShapeError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        predict(onnx_path, np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match="float32; predict expects uint8"):
        predict(onnx_path, np.zeros((1, 1, 16, 16), np.float32))
    with pytest.raises(ConfigError, match="predicts image files or a uint8 array"):
        predict(onnx_path, 42)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable PNG or JPEG"):
        predict(onnx_path, [tmp_path / "bad.png"])


def test_missing_image_and_missing_model(artifacts, tmp_path):
    with pytest.raises(DataError, match=r"missing\.png does not exist"):
        predict(tmp_path / "missing.onnx", [tmp_path / "missing.png"])  # images first
    Image.new("L", (16, 16)).save(tmp_path / "a.png")
    with pytest.raises(CheckpointError, match="No ONNX model"):
        predict(tmp_path / "missing.onnx", [tmp_path / "a.png"])


def test_options_that_do_not_apply_to_onnx(artifacts, deploy_run):
    images = np.zeros((1, 1, 16, 16), np.uint8)
    with pytest.raises(ConfigError, match="carries its own classes"):
        predict(artifacts["onnx"], images, meta=deploy_run.data.meta())
    with pytest.raises(ConfigError, match="run on the CPU"):
        predict(artifacts["onnx"], images, device="cuda")
    with pytest.raises(ConfigError, match="top_k must be"):
        predict(artifacts["onnx"], images, top_k=0)
    with pytest.raises(ConfigError, match=r"torch\.export\.load"):
        predict(artifacts["pt2"], images)
    assert len(predict(artifacts["onnx"], images, device="cpu")) == 1


@pytest.mark.parametrize("torch_installed", [True, False])
def test_the_onnx_path_needs_no_torch(artifacts, pngs, torch_installed):
    block = (
        ""
        if torch_installed
        else (
            "for name in ('torch', 'torchvision', 'safetensors', 'tqdm', 'tomli_w', 'onnx', 'onnxscript'):\n"
            "    sys.modules[name] = None  # as if not installed: importing it fails\n"
        )
    )
    code = (
        "import sys\n"
        f"{block}"
        "import finetune_kit as fk\n"
        f"out = fk.predict({str(artifacts['onnx'])!r}, {[str(p) for p in pngs]!r}, top_k=2)\n"
        "print(out.table())\n"
        "from finetune_kit.cli import main\n"
        f"status = main(['predict', '--model', {str(artifacts['onnx'])!r}, {str(pngs[0])!r}])\n"
        "print('status', status, 'torch imported:', sys.modules.get('torch') is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("status 0 torch imported: False"), out.stdout + out.stderr
    assert predict(artifacts["dir"], pngs, top_k=2).table() in out.stdout
    assert predict(artifacts["dir"], pngs[:1]).table() in out.stdout
