"""export / load_model: safetensors + JSON, EMA weights, LoRA merged, safe loading, no overwrite."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import safetensors.torch
import torch

import finetune_kit as fk
from finetune_kit.errors import CheckpointError, ConfigError, OutputDirError
from finetune_kit.inference import LoadedModel, export, load_model
from finetune_kit.inference.stored_model import INFO_FILE, WEIGHTS_FILE
from tests.inference.brightness import CLASSES, brightness_data


def train_run(path, epochs=2, **options):
    data = brightness_data()
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    settings = dict(
        epochs=epochs,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        progress=False,
        device="cpu",
        output_dir=str(path),
    )
    settings.update(options)
    trainer = fk.Trainer(model, data, **settings)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("export_ema") / "run", epochs=1, ema=0.5)


def logits_of(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def probe(trainer):
    return fk.data.eval_transform_from_meta(trainer.data.meta())(trainer.data.test.images)


def test_export_writes_safetensors_and_json(run, tmp_path):
    out = export(run.run_dir.root, tmp_path / "exported")
    assert out == tmp_path / "exported"
    assert sorted(p.name for p in out.iterdir()) == [INFO_FILE, WEIGHTS_FILE]
    doc = json.loads((out / INFO_FILE).read_text())
    assert doc["format"] == "finetune_kit.export" and doc["weights"] == "model"
    assert doc["class_names"] == CLASSES
    assert doc["model_info"]["name"] == "lenet"
    assert doc["model_info"]["build_kwargs"]["input_size"] == 16
    pre = doc["preprocessing"]
    assert pre["in_channels"] == 1 and pre["image_size"] == [16, 16] == pre["input_size"]
    assert pre["mean"] == pytest.approx(list(run.data.mean))
    assert doc["data_meta"] == json.loads(json.dumps(run.data.meta()))
    assert doc["source"]["checkpoint"].endswith("last.ckpt")
    tensors = safetensors.torch.load_file(str(out / WEIGHTS_FILE))
    expected = run.model.state_dict()
    assert tensors.keys() == expected.keys()
    assert all(torch.equal(tensors[k], expected[k]) for k in expected)


@pytest.mark.parametrize("form", ["directory", "json", "safetensors", "ckpt", "run_dir"])
def test_load_model_from_every_form_gives_the_trained_outputs(run, tmp_path, form):
    out = export(run.run_dir.root, tmp_path / "exported")
    source = {
        "directory": out,
        "json": out / INFO_FILE,
        "safetensors": out / WEIGHTS_FILE,
        "ckpt": run.run_dir.root / "last.ckpt",
        "run_dir": run.run_dir.root,
    }[form]
    loaded = load_model(source)
    assert isinstance(loaded, LoadedModel)
    assert not loaded.model.training
    assert loaded.class_names == CLASSES and loaded.meta["in_channels"] == 1
    assert loaded.weights == "model"
    assert loaded.info.class_names == CLASSES
    x = probe(run)
    assert torch.equal(logits_of(loaded.model, x), logits_of(run.model, x))


def test_export_to_a_named_safetensors_file(run, tmp_path):
    out = export(run.run_dir.root / "last.ckpt", tmp_path / "m" / "fmnist.safetensors")
    assert out.name == "fmnist.safetensors" and out.with_suffix(".json").is_file()
    loaded = load_model(out)
    assert loaded.source == out.with_suffix(".json")


def test_ema_weights_are_exported_by_default(ema_run, tmp_path):
    out = export(ema_run.run_dir.root, tmp_path / "ema")
    doc = json.loads((out / INFO_FILE).read_text())
    assert doc["weights"] == "ema" and doc["ema"]["decay"] == 0.5 and doc["ema"]["num_updates"] > 0
    tensors = safetensors.torch.load_file(str(out / WEIGHTS_FILE))
    ema_state = ema_run.ema.module.state_dict()
    assert all(torch.equal(tensors[k], ema_state[k]) for k in ema_state)
    assert not torch.equal(tensors["fc3.weight"], ema_run.model.state_dict()["fc3.weight"])
    raw = export(ema_run.run_dir.root, tmp_path / "raw", use_ema=False)
    assert json.loads((raw / INFO_FILE).read_text())["weights"] == "model"
    assert load_model(ema_run.run_dir.root).weights == "ema"
    assert load_model(ema_run.run_dir.root, use_ema=False).weights == "model"


def test_lora_run_exports_the_plain_merged_architecture(tmp_path):
    trainer = train_run(tmp_path / "lora", epochs=1, strategy="lora", options={"rank": 2, "alpha": 4.0})
    out = export(trainer.run_dir.root, tmp_path / "exported")
    tensors = safetensors.torch.load_file(str(out / WEIGHTS_FILE))
    plain = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16).state_dict()
    assert tensors.keys() == plain.keys()
    x = probe(trainer)
    torch.testing.assert_close(
        logits_of(load_model(out).model, x), logits_of(trainer.model, x), rtol=1e-4, atol=1e-4
    )


def test_existing_export_is_not_overwritten(run, tmp_path):
    out = export(run.run_dir.root, tmp_path / "exported")
    before = (out / WEIGHTS_FILE).read_bytes(), (out / INFO_FILE).read_bytes()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="overwrite=True"):
        export(run.run_dir.root, out)
    assert ((out / WEIGHTS_FILE).read_bytes(), (out / INFO_FILE).read_bytes()) == before
    export(run.run_dir.root, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [INFO_FILE, WEIGHTS_FILE, "notes.txt"]


def test_export_path_that_is_a_file_is_refused(run, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(OutputDirError, match="existing file"):
        export(run.run_dir.root, target)
    assert target.read_text() == "x"


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['FK_MARKER']}",))


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("FK_MARKER", str(marker))
    evil = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "payload": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="Refused"):
        load_model(evil)
    with pytest.raises(CheckpointError, match="Refused"):
        export(evil, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_mixed_up_export_files_are_refused(run, ema_run, tmp_path):
    a = export(run.run_dir.root, tmp_path / "a")
    b = export(ema_run.run_dir.root, tmp_path / "b")
    (a / WEIGHTS_FILE).write_bytes((b / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(a)


def test_bad_sources_give_clear_errors(run, tmp_path):
    with pytest.raises(CheckpointError, match="Nothing to load"):
        load_model(tmp_path / "missing")
    out = export(run.run_dir.root, tmp_path / "exported")
    (out / INFO_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"model\.json"):
        load_model(out / WEIGHTS_FILE)
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="not a finetune_kit export"):
        load_model(bogus)
    plain = tmp_path / "plain.ckpt"
    torch.save({"model": run.model.state_dict()}, plain)
    with pytest.raises(CheckpointError, match="model_info"):
        export(plain, tmp_path / "out")


def test_docstring_examples_run(tmp_path, monkeypatch):
    import doctest
    import importlib

    # the module, even where fk exports a function of the same name
    module = importlib.import_module("finetune_kit.inference.export")
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# ------------------------------------------------------------------ ONNX and torch.export
def onnx_metadata(path):
    import onnx

    plain = ("finetune_kit_format", "finetune_kit_format_version")  # the only entries not in JSON
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return {k: v if k in plain else json.loads(v) for k, v in props.items()}


def test_onnx_and_torch_export_carry_the_metadata(artifacts, deploy_run):
    meta = deploy_run.data.meta()
    props = onnx_metadata(artifacts["onnx"])
    for key in ("class_names", "in_channels", "image_size", "input_size", "mean", "std"):
        assert props[key] == meta[key], key
    assert props["finetune_kit_format"] == "finetune_kit.deploy" and props["model_name"] == "lenet"
    assert props["source"].startswith(str(deploy_run.run_dir.root)) and props["weights"] == "model"
    extra = {"finetune_kit.json": ""}
    torch.export.load(artifacts["pt2"], extra_files=extra)
    stored = json.loads(extra["finetune_kit.json"])
    assert stored == {
        k: v if isinstance(v, str) and k.startswith("finetune_kit_format") else json.dumps(v)
        for k, v in props.items()
    }


def test_onnx_graph_has_a_dynamic_batch_and_a_recent_opset(artifacts):
    import onnx

    proto = onnx.load(str(artifacts["onnx"]))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.input]
    assert dims == [["batch", 1, 16, 16]]
    assert [v.name for v in proto.graph.output] == ["logits"]
    uint8 = onnx.load(str(artifacts["uint8_onnx"]))
    assert uint8.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [v.name for v in uint8.graph.output] == ["logits", "probabilities"]


def test_every_format_and_path_form(deploy_run, tmp_path):
    from finetune_kit.inference.export import _targets

    root = deploy_run.run_dir.root
    assert export(root, tmp_path / "a.onnx", format="onnx") == tmp_path / "a.onnx"
    assert export(root, tmp_path / "d", format="torch_export") == tmp_path / "d" / "model.pt2"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["model.pt2"]
    assert _targets(tmp_path / "x", "onnx") == {"onnx": tmp_path / "x" / "model.onnx"}
    assert _targets(tmp_path / "x.PT2", "torch_export") == {"torch_export": tmp_path / "x.PT2"}
    assert _targets(tmp_path / "x.safetensors", "safetensors") == {"safetensors": tmp_path / "x.safetensors"}
    assert list(_targets(tmp_path / "x", "all").values()) == [
        tmp_path / "x" / name for name in ("model.safetensors", "model.onnx", "model.pt2")
    ]


def test_export_artifacts_report_the_check(deploy_run, tmp_path):
    from finetune_kit.inference.export import export_artifacts

    arts = export_artifacts(deploy_run.run_dir.root, tmp_path / "all", format="all")
    assert [a.format for a in arts] == ["safetensors", "onnx", "torch_export"]
    assert arts[0].max_abs_diff is None and arts[0].summary().startswith("safetensors: ")
    for art in arts[1:]:
        assert art.checked_images == 8 and 0 <= art.max_abs_diff <= 1e-4
        assert "checked against PyTorch on 8 images: max |logit difference|" in art.summary()
    unchecked = export_artifacts(deploy_run.run_dir.root, tmp_path / "u.onnx", format="onnx", check=False)
    assert unchecked[0].max_abs_diff is None and unchecked[0].summary().endswith("(not checked)")


def test_ema_and_lora_runs_export_the_weights_evaluation_used(ema_run, tmp_path):
    from finetune_kit.inference import OnnxModel

    images = ema_run.data.test.images
    path = export(ema_run.run_dir.root, tmp_path / "ema.onnx", format="onnx")
    assert OnnxModel(path).meta.weights == "ema"
    expected = logits_of(load_model(ema_run.run_dir.root).model, probe(ema_run))
    raw = logits_of(load_model(ema_run.run_dir.root, use_ema=False).model, probe(ema_run))
    got = torch.from_numpy(fk.predict(path, images.numpy()).logits)
    assert (got - expected).abs().max() < 1e-4 and (raw - expected).abs().max() > 1e-3
    lora = train_run(tmp_path / "lora", epochs=1, strategy="lora")
    lora_onnx = export(lora.run_dir.root, tmp_path / "lora.onnx", format="onnx")
    got = torch.from_numpy(fk.predict(lora_onnx, lora.data.test.images.numpy()).logits)
    assert (got - logits_of(load_model(lora.run_dir.root).model, probe(lora))).abs().max() < 1e-4


def test_a_model_a_loaded_model_and_an_export_directory_are_sources(deploy_run, artifacts, tmp_path):
    model, meta = deploy_run.model, deploy_run.data.meta()
    model.train()
    from_model = export(model, tmp_path / "m.onnx", format="onnx", meta=meta)
    assert model.training  # the model passed in is copied, not changed
    from_loaded = export(load_model(artifacts["dir"]), tmp_path / "l.pt2", format="torch_export")
    from_export = export(artifacts["dir"], tmp_path / "e.pt2", format="torch_export")
    images = deploy_run.data.test.images
    expected = fk.predict(from_model, images.numpy()).logits
    x = fk.data.eval_transform_from_meta(meta)(images)
    for program in (from_loaded, from_export):
        with torch.no_grad():
            got = torch.export.load(program).module()(x).numpy()
        assert np.abs(got - expected).max() < 1e-4


def test_onnx_export_refuses_to_overwrite(deploy_run, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"mine")
    with pytest.raises(OutputDirError, match="Refusing to overwrite"):
        export(deploy_run.run_dir.root, target, format="onnx")
    assert target.read_bytes() == b"mine"
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "model.pt2").write_bytes(b"mine")
    with pytest.raises(OutputDirError, match=r"model\.pt2"):
        export(deploy_run.run_dir.root, tmp_path / "all", format="all")
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["model.pt2"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "onxx"}, ConfigError, "Did you mean 'onnx'"),
        ({"format": "onnx", "opset": 12}, ConfigError, "opset must be an integer from 18 to 23"),
        ({"format": "onnx", "tolerance": 0}, ConfigError, "tolerance must be a number > 0"),
        ({"with_preprocessing": True}, ConfigError, "with_preprocessing and probabilities shape"),
        ({"format": "onnx", "meta": {"class_names": ["a"]}}, ConfigError, "do not pass meta="),
    ],
)
def test_bad_options_fail_before_any_work(deploy_run, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        export(deploy_run.run_dir.root, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_paths_that_do_not_fit_the_format(deploy_run, tmp_path):
    with pytest.raises(OutputDirError, match="does not fit format='onnx'"):
        export(deploy_run.run_dir.root, tmp_path / "m.pt2", format="onnx")
    with pytest.raises(OutputDirError, match="pass a directory"):
        export(deploy_run.run_dir.root, tmp_path / "m.onnx", format="all")
    with pytest.raises(ConfigError, match="needs meta="):
        export(deploy_run.model, tmp_path / "m.onnx", format="onnx")
    with pytest.raises(ConfigError, match="export takes a run directory"):
        export(42, tmp_path / "m.onnx", format="onnx")


def test_a_model_without_model_info_exports_to_onnx_not_safetensors(tmp_path):
    from torch import nn

    meta = {
        "class_names": ["a", "b"],
        "in_channels": 1,
        "image_size": [4, 4],
        "input_size": [4, 4],
        "mean": [0.5],
        "std": [0.25],
    }
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    assert export(net, tmp_path / "m.onnx", format="onnx", meta=meta).is_file()
    with pytest.raises(ConfigError, match="was not built by create_model"):
        export(net, tmp_path / "st", meta=meta)


@pytest.mark.parametrize(
    ("missing", "format"), [("onnx", "onnx"), ("onnxscript", "all"), ("onnxruntime", "onnx")]
)
def test_missing_deploy_packages_are_one_line_naming_the_extra(
    deploy_run, tmp_path, monkeypatch, missing, format
):
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # import <missing> now fails
    with pytest.raises(
        ConfigError,
        match=rf'needs the {missing} package, which is not installed: pip install "finetune-kit\[deploy\]"$',
    ):
        export(deploy_run.run_dir.root, tmp_path / "out", format=format)
    assert not (tmp_path / "out").exists()
