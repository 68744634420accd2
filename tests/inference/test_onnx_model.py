"""OnnxModel: an exported file loads with its metadata; missing, corrupt, foreign or tampered
files and a missing onnxruntime give one clear error."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest

from finetune_kit.errors import CheckpointError, ConfigError, ShapeError
from finetune_kit.inference import OnnxModel


def rewrite(original, target, /, **entries):
    """Copy an ONNX file, replacing (value) or removing (None) metadata entries."""
    proto = onnx.load(str(original))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in entries.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = json.dumps(value)
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    return target


def test_loads_with_the_runs_metadata(artifacts, deploy_run):
    model = OnnxModel(artifacts["onnx"], threads=1)
    meta = deploy_run.data.meta()
    assert model.class_names == meta["class_names"]
    assert model.meta.data_meta() == {k: meta[k] for k in model.meta.data_meta()}
    assert model.meta.input_format == "float32" and model.meta.outputs == ("logits",)
    assert model.meta.model_name == "lenet" and model.meta.weights == "model"
    assert str(deploy_run.run_dir.root) in model.meta.source
    assert model.input_shape == (1, 16, 16)
    assert model.run(np.zeros((5, 1, 16, 16), np.float32)).shape == (5, 3)


def test_the_uint8_graph_takes_pixels(artifacts):
    model = OnnxModel(artifacts["uint8_onnx"])
    assert model.meta.input_format == "uint8" and model.meta.outputs == ("logits", "probabilities")
    assert model.run(np.zeros((2, 1, 16, 16), np.uint8)).shape == (2, 3)
    with pytest.raises(ShapeError, match=r"takes uint8 batches of shape \(N, 1, 16, 16\); got float32"):
        model.run(np.zeros((2, 1, 16, 16), np.float32))


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 1, 16, 17), (1, 16, 16), (0, 1, 16, 16)])
def test_run_refuses_batches_the_graph_does_not_take(artifacts, shape):
    with pytest.raises(ShapeError, match="takes float32 batches"):
        OnnxModel(artifacts["onnx"]).run(np.zeros(shape, np.float32))


def test_missing_and_corrupt_files(tmp_path, artifacts):
    with pytest.raises(CheckpointError, match="No ONNX model at"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError, match="No ONNX model at"):
        OnnxModel(tmp_path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(artifacts["onnx"].read_bytes()[:5000])
    for path in (garbage, truncated):
        with pytest.raises(CheckpointError, match="is not a valid ONNX model") as info:
            OnnxModel(path)
        assert "\n" not in str(info.value)


def test_a_foreign_onnx_file_without_metadata(tmp_path, artifacts):
    keys = [p.key for p in onnx.load(str(artifacts["onnx"])).metadata_props]
    plain = rewrite(artifacts["onnx"], tmp_path / "plain.onnx", **dict.fromkeys(keys))
    with pytest.raises(CheckpointError, match="has no finetune_kit metadata"):
        OnnxModel(plain)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"std": [0.0]}, "'std' must be"),
        ({"class_names": [str(i) for i in range(200_000)]}, "'class_names' must be a list of 1 to 100000"),
        ({"in_channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}, "the graph's input has shape"),
        ({"input_size": [32, 32]}, "the graph's input has shape"),
        ({"class_names": ["a", "b", "c", "d"]}, "returns 3 logits per image but its metadata names 4"),
        ({"input_format": "uint8"}, "should take one tensor"),
        ({"outputs": ["logits", "probabilities"]}, "the graph's outputs are"),
    ],
)
def test_tampered_metadata_is_refused(tmp_path, artifacts, entries, message):
    with pytest.raises(CheckpointError, match=message):
        OnnxModel(rewrite(artifacts["onnx"], tmp_path / "tampered.onnx", **entries))


def test_missing_onnxruntime_is_one_line_naming_the_extra(artifacts, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(ConfigError) as info:
        OnnxModel(artifacts["onnx"])
    assert str(info.value) == (
        "Running an ONNX model needs the onnxruntime package, which is not installed: "
        'pip install "finetune-kit[deploy]"'
    )


def test_bad_thread_count(artifacts):
    with pytest.raises(ConfigError, match="threads must be"):
        OnnxModel(artifacts["onnx"], threads=0)
