"""The deployment commands: export --format (with its parity check) and predict --model."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

import finetune_kit as fk
from finetune_kit.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_deploy")
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=8, val_fraction=0.0
    )
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    trainer = fk.Trainer(model, data, epochs=1, batch_size=16, progress=False, output_dir=str(root / "run"))
    trainer.fit()
    return trainer.run_dir.root


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("finetune-kit: error: ") and "\n" not in err
    return err


def test_export_all_prints_the_checked_difference(run_dir, tmp_path, capsys):
    assert (
        main(["export", "--checkpoint", str(run_dir), "--output", str(tmp_path / "out"), "--format", "all"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"Exported safetensors: {tmp_path / 'out' / 'model.safetensors'}"
    for line, name in zip(lines[1:], ("onnx", "torch_export"), strict=True):
        assert line.startswith(f"Exported {name}: ") and "checked against PyTorch on 8 images" in line
        difference = float(line.split("max |logit difference| ")[1].rstrip(")"))
        assert 0 <= difference <= 1e-4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "model.json",
        "model.onnx",
        "model.pt2",
        "model.safetensors",
    ]


def test_export_onnx_options_and_no_check(run_dir, tmp_path, capsys):
    target = tmp_path / "m.onnx"
    argv = ["export", "--checkpoint", str(run_dir), "--output", str(target), "--format", "onnx"]
    assert main([*argv, "--with-preprocessing", "--probabilities", "--no-check", "--opset", "18"]) == 0
    assert capsys.readouterr().out.strip() == f"Exported onnx: {target} (not checked)"
    model = fk.OnnxModel(target)
    assert model.meta.input_format == "uint8" and model.meta.outputs == ("logits", "probabilities")
    assert main(argv) == 2 and "Refusing to overwrite" in error_line(capsys)
    assert main([*argv, "--overwrite", "--tolerance", "-1"]) == 2
    assert "tolerance must be a number > 0" in error_line(capsys)


def test_export_format_is_checked_by_the_parser(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(run_dir), "--output", str(tmp_path / "x"), "--format", "tflite"])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_predict_with_an_onnx_model_prints_the_torch_table(run_dir, tmp_path, capsys):
    main(["export", "--checkpoint", str(run_dir), "--output", str(tmp_path / "out"), "--format", "all"])
    image = tmp_path / "x.png"
    Image.new("L", (16, 16), color=140).save(image)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "out"), str(image), "--top-k", "2"]) == 0
    by_torch = capsys.readouterr().out
    assert main(["predict", "--model", str(tmp_path / "out" / "model.onnx"), str(image), "--top-k", "2"]) == 0
    assert capsys.readouterr().out == by_torch and "fake_" in by_torch
    assert main(["predict", "--model", str(tmp_path / "missing.onnx"), str(image)]) == 2
    assert "No ONNX model at" in error_line(capsys)
    assert (
        main(["predict", "--model", str(tmp_path / "out" / "model.onnx"), str(image), "--device", "cuda"])
        == 2
    )
    assert "run on the CPU" in error_line(capsys)
    with pytest.raises(SystemExit):
        main(["predict", "--model", "a.onnx", "--checkpoint", "b", str(image)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_predict_command_without_onnxruntime_is_one_line(run_dir, tmp_path):
    main(["export", "--checkpoint", str(run_dir), "--output", str(tmp_path / "m.onnx"), "--format", "onnx"])
    Image.new("L", (16, 16)).save(tmp_path / "x.png")
    code = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None\n"  # as if it were not installed
        "from finetune_kit.cli import main\n"
        f"sys.exit(main(['predict', '--model', {str(tmp_path / 'm.onnx')!r}, {str(tmp_path / 'x.png')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "finetune-kit: error: Running an ONNX model needs the onnxruntime package, which is not "
        'installed: pip install "finetune-kit[deploy]"'
    )
