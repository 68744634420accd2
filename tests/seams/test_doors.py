"""Seams: a run made through one door resumes, evaluates, exports, predicts and re-trains through
every other door, with the same numbers, touching only its own files.

The doors are the Python Trainer, the CLI with a config file, and the CLI with flags over a
partial config (FineTuner recipes have their own tests below). Each run is cut short with
``max_steps`` (it saves ``last.ckpt`` at that exact position) and resumed; on the CPU with
``deterministic = true`` every route must end with the reference run's weights, bit for bit.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.storage.checkpoint import load_checkpoint

FAKE = dict(num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=12)
RECIPE = dict(
    epochs=2,
    batch_size=8,
    lr=0.05,
    scheduler="onecycle",
    deterministic=True,
    device="cpu",
    progress=False,
    seed=0,
)
CUT = 3  # optimizer steps before the first leg stops (mid-epoch: 5 steps per epoch)

CONFIG = """
[data]
dataset = "fake"
val_fraction = 0.25
options = {num_classes = 3, in_channels = 1, image_size = 16, train_size = 48, test_size = 12}
[model]
name = "lenet"
options = {input_size = 16}
[optim]
lr = 0.05
scheduler = "onecycle"
[loader]
batch_size = 8
[train]
epochs = 2
deterministic = true
device = "cpu"
progress = false
"""
# The same run with the keys the CLI flags give left out.
PARTIAL = CONFIG.replace("lr = 0.05\n", "").replace("batch_size = 8\n", "").replace("epochs = 2\n", "")
FLAGS = ["--lr", "0.05", "--batch-size", "8", "--epochs", "2", "--seed", "0"]


def python_parts():
    data = fk.create_datasets("fake", val_fraction=0.25, seed=0, **FAKE)
    return fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16, seed=0), data


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def touched(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.ckpt")["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, through the Python door."""
    root = tmp_path_factory.mktemp("reference")
    model, data = python_parts()
    trainer = fk.Trainer(model, data, output_dir=str(root / "run"), **RECIPE)
    trainer.fit()
    report = trainer.test(print_report=False)
    return {
        "weights": final_weights(root / "run"),
        "accuracy": report.accuracy,
        "loss": report.loss,
        "predictions": trainer.predict(data.test).indices,
    }


def first_leg(door: str, root: Path) -> Path:
    """Run ``door`` until ``max_steps`` stops it; return its run directory."""
    run = root / f"{door}-run"
    if door == "python":
        model, data = python_parts()
        fk.Trainer(model, data, output_dir=str(run), max_steps=CUT, **RECIPE).fit()
    elif door == "cli-config":
        (root / "run.toml").write_text(CONFIG)
        argv = ["train", "--config", str(root / "run.toml"), "--output-dir", str(run)]
        assert main([*argv, "--set", f"train.max_steps={CUT}", "--no-test"]) == 0
    else:
        (root / "partial.toml").write_text(PARTIAL)
        argv = ["train", "--config", str(root / "partial.toml"), *FLAGS, "--output-dir", str(run)]
        assert main([*argv, "--set", f"train.max_steps={CUT}", "--no-test"]) == 0
    assert load_checkpoint(run / "last.ckpt")["position"]["global_step"] == CUT
    return run


def resume(door: str, run: Path) -> None:
    if door == "python":
        model, data = python_parts()
        fk.Trainer(model, data, **RECIPE).fit(resume=run / "last.ckpt")
    else:
        # The run stopped at max_steps, and would stop there again: unset it.
        assert main(["train", "--resume", str(run), "--set", "train.max_steps=none", "--no-test"]) == 0


@pytest.mark.parametrize("start", ["python", "cli-config", "cli-flags"])
def test_a_run_continues_through_every_door_with_the_same_numbers(start, tmp_path, reference, capsys):
    run = first_leg(start, tmp_path)
    config = fk.load_config(run / "config.toml")  # the run directory describes the run
    assert (config.data.dataset, config.model.name, config.finetune.strategy) == ("fake", "lenet", "full")
    assert config.data.options == FAKE and config.model.options == {"input_size": 16}
    for door in ("python", "cli"):
        copy = tmp_path / f"{start}-resumed-by-{door}"
        shutil.copytree(run, copy)
        before = hashes(tmp_path)
        resume(door, copy)
        assert same_weights(final_weights(copy), reference["weights"]), (start, door)
        assert {path.split("/")[0] for path in touched(before, hashes(tmp_path))} == {copy.name}

        before = hashes(tmp_path)
        python_report = fk.evaluate_checkpoint(copy, device="cpu", print_report=False)
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", str(copy)]) == 0
        printed = capsys.readouterr().out
        assert python_report.accuracy == reference["accuracy"]
        assert f"{reference['loss']:.4f}" in printed
        assert touched(before, hashes(tmp_path)) == set()  # evaluating writes nothing

        export = tmp_path / f"{copy.name}-export"
        fk.export(copy, export)
        _, data = python_parts()
        assert torch.equal(fk.predict(export, data.test).indices, reference["predictions"])

    retrain = tmp_path / f"{start}-retrained"
    before = hashes(tmp_path)
    argv = ["train", "--config", str(run / "config.toml"), "--output-dir", str(retrain), "--no-test"]
    assert main([*argv, "--set", "train.max_steps=none"]) == 0
    assert same_weights(final_weights(retrain), reference["weights"])
    assert {p.split("/")[0] for p in touched(before, hashes(tmp_path))} == {retrain.name}


def test_resume_with_an_output_dir_leaves_the_old_run_as_it_was(tmp_path, reference):
    run = first_leg("python", tmp_path)
    before = hashes(run)
    fork = tmp_path / "fork"
    argv = ["train", "--resume", str(run), "--output-dir", str(fork), "--set", "max_steps=none"]
    assert main([*argv, "--no-test"]) == 0
    assert hashes(run) == before
    assert same_weights(final_weights(fork), reference["weights"])
    assert fk.load_config(fork / "config.toml").train.output_dir == str(fork.resolve())


def test_a_checkpoint_outside_a_run_directory_is_not_resumed_in_place(tmp_path, capsys):
    run = first_leg("python", tmp_path)
    loose = tmp_path / "downloads"
    loose.mkdir()
    (loose / "notes.txt").write_text("mine")
    shutil.copy(run / "last.ckpt", loose / "last.ckpt")
    before = hashes(loose)
    model, data = python_parts()
    with pytest.raises(fk.OutputDirError, match="not inside a run directory"):
        fk.Trainer(model, data, **RECIPE).fit(resume=loose / "last.ckpt")
    assert main(["train", "--resume", str(loose / "last.ckpt"), "--no-test"]) == 2
    assert "not inside a run directory" in capsys.readouterr().err
    assert hashes(loose) == before
    model, data = python_parts()
    fk.Trainer(model, data, output_dir=str(tmp_path / "continued"), **RECIPE).fit(resume=loose / "last.ckpt")
    assert hashes(loose) == before


@pytest.mark.parametrize(
    "change, key",
    [
        (["--set", "optim.optimizer=adam"], "optim.optimizer"),
        (["--set", "optim.scheduler=cosine"], "optim.scheduler"),
        (["--set", "finetune.strategy=linear_probe"], "finetune.strategy"),
        (["--batch-size", "4"], "loader.batch_size"),
    ],
)
def test_a_refused_resume_changes_no_file(change, key, tmp_path, capsys):
    run = first_leg("cli-config", tmp_path)
    before = hashes(tmp_path)
    capsys.readouterr()  # the first leg's epoch lines
    assert main(["train", "--resume", str(run), *change, "--no-test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and "Traceback" not in err
    assert hashes(tmp_path) == before


def test_evaluate_refuses_data_that_changed_under_the_run(tmp_path, capsys):
    root = tmp_path / "images"
    for cls in ("ant", "bee"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            torch.manual_seed(i + (10 if cls == "bee" else 0))
            image = (torch.rand(3, 16, 16) * 255).to(torch.uint8)
            from PIL import Image

            Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / cls / f"{i}.png")
    data = fk.create_datasets("image_folder", root=root, val_fraction=0, test_fraction=0.34)
    model = fk.create_model("lenet", num_classes=2, in_channels=3, input_size=16)
    trainer = fk.Trainer(
        model, data, epochs=1, batch_size=4, progress=False, device="cpu", output_dir=str(tmp_path / "run")
    )
    trainer.fit()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 0
    (root / "bee" / "0.png").unlink()  # the folder changed after training
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 2
    assert "was made for other data" in capsys.readouterr().err
    (tmp_path / "run" / "split.json").unlink()  # and without the split file, the data are still checked
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 2
    assert "not the data" in capsys.readouterr().err


# ------------------------------------------------------------------ FineTuner recipes
class StopAt(fk.Callback):
    def __init__(self, stage_steps: int) -> None:
        self.steps = stage_steps

    def on_train_batch_end(self, trainer):
        if (
            trainer.config.finetune.strategy == "discriminative_lr"
            and trainer.state.global_step == self.steps
        ):
            trainer.stop_signal = "SIGINT"


def tuner(root: Path, **kw) -> fk.FineTuner:
    model, data = python_parts()
    return fk.FineTuner(
        model,
        dataset=data,
        recipe="two_stage",
        epochs=1,
        freeze_epochs=1,
        output_dir=str(root),
        batch_size=8,
        deterministic=True,
        device="cpu",
        progress=False,
        **kw,
    )


def test_an_interrupted_recipe_resumes_as_a_whole_from_python_and_the_cli(tmp_path, capsys):
    whole = tuner(tmp_path / "whole")
    whole.fit()
    expected = {k: v.clone() for k, v in whole.model.state_dict().items()}
    for door in ("python", "cli"):
        cut = tuner(tmp_path / f"cut-{door}", callbacks=[StopAt(2)])
        if door == "cli":
            cut.resume_hint = "finetune-kit train --resume {output_dir}"
        assert cut.fit().interrupted
        err = capsys.readouterr().err
        if door == "python":
            assert "fit(resume=True)" in err
            tuner(tmp_path / f"cut-{door}").fit(resume=True)
            got = load_checkpoint(tmp_path / f"cut-{door}" / "2-full" / "last.ckpt")["model"]
        else:
            assert f"finetune-kit train --resume {tmp_path / 'cut-cli'}" in err
            assert main(["train", "--resume", str(tmp_path / "cut-cli"), "--no-test"]) == 0
            assert not (tmp_path / "cut-cli" / "2-full" / "1-head").exists()  # nothing nested
            got = load_checkpoint(tmp_path / "cut-cli" / "2-full" / "last.ckpt")["model"]
        assert same_weights(got, expected), door


def test_a_recipe_keeps_the_preset_of_a_given_bundle(tmp_path):
    data = fk.create_datasets("fake", val_fraction=0.25, preset="none", **FAKE)
    ft = fk.FineTuner(
        "resnet18", dataset=data, weights=None, small_input=True, epochs=1, output_dir=str(tmp_path / "ft")
    )
    assert ft.data.preset.name == "none" and ft.data.input_size == (16, 16)


def test_a_recipe_takes_data_settings_in_data_options(tmp_path):
    ft = fk.FineTuner(
        "lenet",
        dataset="fake",
        weights=None,
        recipe="linear_probe",
        epochs=1,
        data_options={"val_fraction": 0.5, "preset": "none", **FAKE},
        model_options={"input_size": 16},
        output_dir=str(tmp_path / "ft"),
    )
    assert ft.config.data.val_fraction == 0.5 and ft.config.data.options == FAKE
    assert len(ft.data.val) == 24
