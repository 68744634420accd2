"""A small study shared by the tuning tests: a LeNet on fake 16x16 images, a few seconds a trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from finetune_kit.tuning import load_tune_config

BASE = """
[data]
dataset = "fake"
val_fraction = 0.25
options = {{train_size = {train_size}, test_size = 24, num_classes = 3, in_channels = 1, image_size = 16}}
[loader]
batch_size = 24
[model]
name = "lenet"
options = {{input_size = 16}}
[train]
epochs = {epochs}
device = "cpu"
deterministic = true
seed = 0
"""
SPACE = """
[tune]
"optim.lr" = {low = 0.003, high = 0.3, log = true}
"finetune.strategy" = ["full", "freeze_first"]
"finetune.options.n" = {choices = [1, 2], when = {"finetune.strategy" = "freeze_first"}}
"""


def study_text(*, epochs: int = 2, train_size: int = 96, space: str = SPACE) -> str:
    """A study's TOML: the base config and a ``[tune]`` section."""
    return BASE.format(epochs=epochs, train_size=train_size) + space


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    """The small study written to ``tmp_path/study.toml``."""
    path = tmp_path / "study.toml"
    path.write_text(study_text())
    return path


@pytest.fixture
def small_study(study_file):
    """``(base config, search space)`` of the small study."""
    return load_tune_config(study_file)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the trials are tiny, and the test machine's two cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_plots(monkeypatch):
    """Skip drawing the study's figures (about 2 s per study) where a test is not about them."""
    from finetune_kit.tuning import study_dir

    monkeypatch.setattr(study_dir, "write_plots", lambda study, folder: ([], []))


def start_tune(argv: list[str], log: Path) -> subprocess.Popen:
    """``python -m finetune_kit tune ARGV`` in its own process (one torch thread), output in ``log``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "finetune_kit", "tune", *argv],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )


def fork_tune(argv: list[str], log: Path) -> Any:
    """``finetune-kit tune ARGV`` in a process forked from a server that imported finetune_kit once.

    The child runs the command's entry point (``finetune_kit.cli.main``) as its own process
    (see tests/reliability/kill_helpers.py) without paying for importing torch again.
    """
    from tests.reliability import kill_helpers

    return kill_helpers.start_cli(["tune", *argv], log).process


def wait_for(
    condition, what: str, process: Any = None, log: Path | None = None, timeout: float = 180.0
) -> None:
    """Poll ``condition()`` until it is true; fail (killing ``process``) after ``timeout`` s.

    ``process`` is a ``subprocess.Popen`` or a ``multiprocessing.Process``; a failure shows the
    end of its output ``log``.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        status = (
            process.poll() if isinstance(process, subprocess.Popen) else getattr(process, "exitcode", None)
        )
        if status is not None:
            output = log.read_text()[-3000:] if log is not None and log.is_file() else ""
            pytest.fail(f"the worker exited with {status} before {what}:\n{output}")
        if time.monotonic() > deadline:
            if process is not None:
                process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def trial_state(study_dir: Path, number: int) -> str | None:
    """The state in ``trial-NNNN/trial.json``, or None while it does not exist."""
    path = study_dir / f"trial-{number:04d}" / "trial.json"
    try:
        return json.loads(path.read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None
