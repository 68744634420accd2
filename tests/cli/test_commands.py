"""The finetune-kit command: train, evaluate, list, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetune_kit.cli import main
from finetune_kit.storage.checkpoint import load_checkpoint

FAKE = """
[data]
dataset = "fake"
val_fraction = 0.2
options = {train_size = 80, test_size = 20, num_classes = 3, in_channels = 1, image_size = 16}
[loader]
batch_size = 16
[model]
name = "lenet"
options = {input_size = 16}
[train]
epochs = 2
progress = false
"""


def write_config(tmp_path: Path, text: str = FAKE) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_train_then_evaluate(tmp_path, capsys):
    config = write_config(tmp_path)
    run = tmp_path / "out"
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--lr", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "f1-score" in out and "Run directory" in out
    assert load_checkpoint(run / "last.ckpt")["config"]["optim"]["lr"] == 0.01
    report = json.loads((run / "report.json").read_text())
    assert main(["evaluate", "--checkpoint", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"{report['accuracy']:.4f}" in out


@pytest.mark.parametrize(("flag", "saved"), [("1", 1), ("auto", "auto")])
def test_threads_flag(tmp_path, flag, saved):
    config, run = write_config(tmp_path), tmp_path / "out"
    assert (
        main(["train", "--config", str(config), "--output-dir", str(run), "--threads", flag, "--no-test"])
        == 0
    )
    assert load_checkpoint(run / "last.ckpt")["config"]["train"]["threads"] == saved


def test_a_bad_threads_flag_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(write_config(tmp_path)), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: expected a positive integer or 'auto', got '0'" in capsys.readouterr().err


def test_set_overrides_and_resume_finished_run(tmp_path, capsys):
    config = write_config(tmp_path)
    run = tmp_path / "out"
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--output-dir",
                str(run),
                "--set",
                "train.epochs=1",
                "--no-test",
            ]
        )
        == 0
    )
    assert load_checkpoint(run / "last.ckpt")["position"]["epoch"] == 1
    # Resuming from the checkpoint alone (its stored config), with more epochs.
    assert main(["train", "--resume", str(run / "last.ckpt"), "--epochs", "2", "--no-test"]) == 0
    assert load_checkpoint(run / "last.ckpt")["position"]["epoch"] == 2


@pytest.mark.parametrize(
    "kind", ["datasets", "models", "losses", "optimizers", "schedulers", "metrics", "strategies"]
)
def test_list(kind, capsys):
    assert main(["list", kind]) == 0
    assert len(capsys.readouterr().out.split()) >= 3


def test_list_pattern(capsys):
    assert main(["list", "models", "resnet*"]) == 0
    names = capsys.readouterr().out.split()
    assert "resnet18" in names and "convnet" not in names


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("finetune-kit: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("config_text", "argv_extra", "expected"),
    [
        (FAKE.replace('dataset = "fake"', 'dataset = "fashon_mnist"'), [], "Did you mean 'fashion_mnist'"),
        (FAKE.replace('name = "lenet"', 'name = "resnet81"'), [], "Unknown model 'resnet81'"),
        (
            FAKE.replace("epochs = 2", "epochz = 2"),
            [],
            "unknown key 'epochz' in [train]. Did you mean 'epochs'",
        ),
        (FAKE, ["--set", "optim.lr=-1"], "optim.lr must be > 0"),
        (FAKE, ["--device", "cuda:7"], "cuda"),
        ('[data]\ndataset = "mnist"\nroot = "/nonexistent"\ndownload = false\n', [], "mnist"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, config_text, argv_extra, expected):
    config = write_config(tmp_path, config_text)
    status = main(["train", "--config", str(config), "--output-dir", str(tmp_path / "o"), *argv_extra])
    assert status == 2
    assert expected in error_line(capsys)


def test_missing_data_names_places_and_fixes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", str(tmp_path / "none"))
    config = write_config(tmp_path, '[data]\ndataset = "fashion_mnist"\ndownload = false\n')
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "o")]) == 2
    line = error_line(capsys)
    assert "FINETUNE_KIT_DATA" in line and "apt-get install dataset-fashion-mnist" in line


def test_unwritable_output_dir(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    config = write_config(tmp_path)
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "file" / "run")]) == 2
    assert "Cannot write to run directory" in error_line(capsys)


def test_existing_run_dir_refused(tmp_path, capsys):
    config = write_config(tmp_path)
    run = tmp_path / "out"
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--no-test"]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--output-dir", str(run)]) == 2
    assert "already exists" in error_line(capsys)
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--overwrite", "--no-test"]) == 0


def test_missing_config_file(capsys):
    assert main(["train", "--config", "nope.toml"]) == 2
    assert "Config file not found" in error_line(capsys)


def test_debug_shows_traceback(capsys):
    assert main(["--debug", "train", "--config", "nope.toml"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unknown_list_kind(capsys):
    assert main(["list", "modles"]) == 2
    assert "Did you mean 'models'" in error_line(capsys)


def test_sigint_saves_a_checkpoint_and_prints_resume(tmp_path):
    """A real process gets SIGINT mid-run: it saves last.ckpt, says how to resume, exits 130."""
    text = FAKE.replace("train_size = 80", "train_size = 400").replace("epochs = 2", "epochs = 500")
    config = write_config(tmp_path, text)
    run = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune_kit", "train", "--config", str(config), "--output-dir", str(run)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (run / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for the first epoch to finish, so training is surely underway
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with: finetune-kit train" in err
    state = load_checkpoint(run / "last.ckpt")
    assert state["position"]["global_step"] > 0
    assert (
        main(
            [
                "train",
                "--resume",
                str(run / "last.ckpt"),
                "--epochs",
                str(state["position"]["epoch"] + 1),
                "--no-test",
            ]
        )
        == 0
    )


def test_export_and_predict_commands(tmp_path, capsys):
    from PIL import Image

    config = write_config(tmp_path)
    run = tmp_path / "out"
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--no-test"]) == 0
    assert main(["export", "--checkpoint", str(run), "--output", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "model.safetensors").is_file()
    assert main(["export", "--checkpoint", str(run), "--output", str(tmp_path / "exported")]) == 2
    capsys.readouterr()
    image = tmp_path / "digit.png"
    Image.new("L", (16, 16), color=128).save(image)
    assert main(["predict", "--checkpoint", str(tmp_path / "exported"), str(image), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "digit.png" in out and "fake_" in out
    assert main(["predict", "--checkpoint", str(run), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in error_line(capsys)


def test_evaluate_a_lora_run(tmp_path, capsys):
    config = write_config(tmp_path, FAKE + '[finetune]\nstrategy = "lora"\noptions = {rank = 2}\n')
    run = tmp_path / "out"
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--epochs", "1"]) == 0
    accuracy = json.loads((run / "report.json").read_text())["accuracy"]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--device", "cpu"]) == 0
    assert f"{accuracy:.4f}" in capsys.readouterr().out


def test_the_listing_manifest_matches_the_registries():
    from finetune_kit.cli.builtin_names import BUILTIN_NAMES, live_names

    assert live_names() == BUILTIN_NAMES, "regenerate it: python -m finetune_kit.cli.builtin_names"


def test_quick_commands_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from finetune_kit.cli import main\n"
        "main(['list', 'models', 'resnet*'])\n"
        "assert 'torch' not in sys.modules, 'list imported torch'\n"
        "try:\n"
        "    main(['train', '--epochs', 'x'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 2\n"
        "assert 'torch' not in sys.modules, 'an argument error imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "resnet18" in out.stdout


@pytest.mark.parametrize("model, size", [("convnet", None), ("lenet", None), ("resnet9", "16")])
def test_verify_conv_checks_registry_models(model, size, capsys):
    argv = ["verify-conv", "--model", model] + (["--image-size", size] if size else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "50 of 50 checks passed: PASS" in out and "param grads" in out


def test_global_flags_work_after_the_subcommand(capsys):
    assert main(["list", "nope", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_list_recipes_and_singular_kinds(capsys):
    assert main(["list", "recipes"]) == 0 and "two_stage" in capsys.readouterr().out
    assert main(["list", "strategy", "freeze*"]) == 0
    assert capsys.readouterr().out.split() == ["freeze_first", "freeze_until"]


def test_evaluate_finds_data_that_moved(tmp_path, capsys):
    import shutil

    import finetune_kit as fk

    root = tmp_path / "data"
    root.mkdir()
    for name in ("train", "t10k"):
        for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
            shutil.copy(f"/usr/share/datasets/fashion-mnist/{name}-{kind}", root)
    data = fk.create_datasets("fashion_mnist", root=root, limit=60, download=False)
    model = fk.create_model("convnet", num_classes=10, in_channels=1)
    fk.Trainer(model, data, epochs=1, progress=False, device="cpu", output_dir=str(tmp_path / "run")).fit()
    moved = tmp_path / "moved"
    root.rename(moved)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data-root", str(moved)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--set", "data.limit=30"]) == 2
    assert "other data" in capsys.readouterr().err  # other images than the run's are refused
