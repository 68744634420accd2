"""Loggers: train.log and the console lines, metric files by name, TensorBoard read back for real."""

from __future__ import annotations

import json
import sys

import pytest

import finetune_kit as fk
from finetune_kit.callbacks import ProgressBar, TextLogger, bars_wanted, create_loggers
from finetune_kit.errors import ConfigError


@pytest.fixture
def make_trainer(tmp_path):
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=24, val_fraction=0.25
    )

    def make(run="run", **options):
        model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
        settings = dict(epochs=2, batch_size=16, device="cpu", output_dir=str(tmp_path / run))
        return fk.Trainer(model, data, **{**settings, **options})

    return make


def epoch_lines(text):
    return [line for line in text.splitlines() if line.startswith("epoch ") and "train loss" in line]


def test_train_log_holds_the_summary_one_line_per_epoch_and_the_test(make_trainer, capsys):
    trainer = make_trainer(verbosity=2)
    trainer.fit()
    trainer.test(print_report=False)
    log = (trainer.run_dir.root / "train.log").read_text()
    assert "\r" not in log
    lines = log.splitlines()
    assert lines[0].startswith("finetune_kit ") and "fit started" in lines[0]
    assert lines[1] == f"run directory: {trainer.run_dir.root}"
    assert "weights: none (random initialisation)" in lines
    assert any(line.startswith("data: fake, 36 train / 12 val / 24 test images, 3 classes") for line in lines)
    assert any(line.startswith("strategy: full()") for line in lines)  # the trainable table
    assert [line.split("  ")[0] for line in epoch_lines(log)] == ["epoch 1/2", "epoch 2/2"]
    row = trainer.history.rows[1]
    assert f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}" in epoch_lines(log)[1]
    assert "img/s" in epoch_lines(log)[1] and f"{row['epoch_time']:.1f}s" in epoch_lines(log)[1]
    assert any(line.startswith("fit done: 2 epochs in ") for line in lines)
    assert lines[-1] == f"test: 24 images, loss {trainer.state.test_report.loss:.4f}, accuracy " + (
        f"{trainer.state.test_report.accuracy:.4f}"
    )
    err = capsys.readouterr().err  # verbosity 2: the same lines on the console, but not the test
    assert epoch_lines(err) == epoch_lines(log) and "fit done" in err and "test:" not in err


def test_the_console_follows_verbosity_and_the_terminal(make_trainer, capsys, monkeypatch):
    silent = make_trainer("silent", verbosity=0)
    silent.fit()
    assert capsys.readouterr().err == ""
    assert len(epoch_lines((silent.run_dir.root / "train.log").read_text())) == 2  # the log is kept
    # progress bars asked for, but stderr is not a terminal (a file, a CI log): plain lines
    plain = make_trainer("plain")
    assert not any(isinstance(cb, ProgressBar) for cb in plain.callbacks.callbacks)
    plain.fit()
    assert len(epoch_lines(capsys.readouterr().err)) == 2
    # on a terminal: bars, and the text logger prints only the summaries
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bars = make_trainer("bars")
    assert any(isinstance(cb, ProgressBar) for cb in bars.callbacks.callbacks)
    bars.fit()
    err = capsys.readouterr().err
    assert epoch_lines(err) == [] and "fit done" in err and "run directory" in err
    assert make_trainer("off", progress=False).callbacks.callbacks[0].__class__ is not ProgressBar


def test_bars_wanted():
    assert not bars_wanted(progress=True, verbosity=0)
    assert not bars_wanted(progress=True, verbosity=2)
    assert not bars_wanted(progress=False, verbosity=1)


def test_a_resumed_run_continues_its_log(make_trainer):
    first = make_trainer(epochs=1, verbosity=0)
    first.fit()
    second = make_trainer(epochs=2, verbosity=0)
    second.fit(resume="last")
    log = (second.run_dir.root / "train.log").read_text()
    assert log.count("fit started") == 2 and "resuming at epoch 2, step 3" in log
    assert [line.split("  ")[0] for line in epoch_lines(log)] == ["epoch 1/1", "epoch 2/2"]


def test_loggers_by_name(make_trainer):
    trainer = make_trainer(loggers=["json"], verbosity=0)
    trainer.fit()
    root = trainer.run_dir.root
    assert not (root / "metrics.csv").exists()
    assert json.loads((root / "metrics.json").read_text()) == trainer.history.rows
    assert [type(cb).__name__ for cb in create_loggers(["json", "csv", "json"])] == [
        "JSONLogger",
        "CSVLogger",
    ]
    with pytest.raises(ConfigError, match="Unknown logger 'csb'. Did you mean 'csv'"):
        create_loggers(["csb"])
    with pytest.raises(ConfigError, match="console must be one of"):
        TextLogger(console="loud")


def test_tensorboard_events_read_back_with_tensorboards_own_reader(make_trainer):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(loggers=["csv", "json", "tensorboard"], verbosity=0)
    trainer.fit()
    events = EventAccumulator(str(trainer.run_dir.root / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"} <= tags
    for key in ("train_loss", "val_accuracy", "lr"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx(trainer.history[key], rel=1e-6)
