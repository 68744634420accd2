"""Two processes, one run directory: the lock refuses the second, and a killed run's lock is stale.

Every process is a real ``finetune-kit`` CLI run (``finetune_kit.cli.main`` in a process forked
from a server that imported finetune_kit once, see kill_helpers.py). The first run is paused
after its first checkpoint (while a flag file exists), so the others meet it at a known moment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from finetune_kit.storage.checkpoint import load_checkpoint
from finetune_kit.storage.run_lock import LOCK_FILE
from tests.reliability import kill_helpers
from tests.reliability.hostile import digest

CONFIG = """
[data]
dataset = "fake"
val_fraction = 0.25
options = {train_size = 64, test_size = 8, num_classes = 3, in_channels = 1, image_size = 16}
[loader]
batch_size = 16
[model]
name = "lenet"
options = {input_size = 16}
[optim]
lr = 0.05
[train]
epochs = 2
device = "cpu"
checkpoint_every = 1
progress = false
"""
TIMEOUT = 120.0


def wait_for(path: Path, child: kill_helpers.Child) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert child.process.is_alive(), "the first run ended early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def error_line(log: Path) -> str:
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finetune-kit: error: "), lines
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def server():
    kill_helpers.boot()


@pytest.mark.timeout(300)
def test_a_second_run_and_a_resume_are_refused_while_a_run_writes(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    run, hold = tmp_path / "run", tmp_path / "hold"
    hold.touch()
    first = kill_helpers.start_cli(
        ["train", "--config", str(config), "--output-dir", str(run), "--no-test"],
        tmp_path / "first.log",
        f"{kill_helpers.HOLD_PHASE}{hold}",
    )
    wait_for(run / "last.ckpt", first)  # paused right after its first checkpoint
    before = digest(run)
    others = {
        "overwrite": [
            "train",
            "--config",
            str(config),
            "--output-dir",
            str(run),
            "--overwrite",
            "--lr",
            "0.5",
        ],
        "resume": ["train", "--resume", str(run / "last.ckpt")],
        "resume-dir": ["train", "--resume", str(run), "--epochs", "3"],
    }
    for name, argv in others.items():
        status = kill_helpers.start_cli(argv, tmp_path / f"{name}.log").wait(TIMEOUT)
        line = error_line(tmp_path / f"{name}.log")
        assert status == 2, line
        assert f"is in use by process {first.process.pid}" in line and "nothing was changed" in line, line
        assert digest(run) == before, f"{name} changed the busy run directory"
    hold.unlink()
    assert first.wait(TIMEOUT) == 0, (tmp_path / "first.log").read_text()[-2000:]
    assert "lr = 0.05" in (run / "config.toml").read_text()  # the first run's, not 0.5
    assert load_checkpoint(run / "last.ckpt")["position"]["epoch"] == 2
    assert not (run / LOCK_FILE).exists()


@pytest.mark.timeout(300)
def test_a_killed_run_does_not_block_its_resume(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    run, hold = tmp_path / "run", tmp_path / "hold"
    hold.touch()
    argv = ["train", "--config", str(config), "--output-dir", str(run), "--no-test"]
    first = kill_helpers.start_cli(argv, tmp_path / "first.log", f"{kill_helpers.HOLD_PHASE}{hold}")
    wait_for(run / "last.ckpt", first)
    first.kill()  # SIGKILL: its lock file stays behind
    assert (run / LOCK_FILE).exists()
    resumed = kill_helpers.start_cli(["train", "--resume", str(run), "--no-test"], tmp_path / "resumed.log")
    assert resumed.wait(TIMEOUT) == 0, (tmp_path / "resumed.log").read_text()[-2000:]
    assert load_checkpoint(run / "last.ckpt")["position"]["epoch"] == 2
    assert not (run / LOCK_FILE).exists()
    again = kill_helpers.start_cli([*argv, "--overwrite"], tmp_path / "again.log")
    assert again.wait(TIMEOUT) == 0, "a finished run's directory is free again"
    assert not os.path.exists(run / LOCK_FILE)
