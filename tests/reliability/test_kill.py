"""Crash safety: SIGKILL a CLI training run at random moments, then resume it to the same weights.

One uninterrupted reference run, then many trials. Each trial starts the same run in a fresh
directory and SIGKILLs it -- after a random delay, the moment a checkpoint temp file appears,
or from inside at an exact phase of a checkpoint write -- and then checks that

* every ``*.ckpt`` left behind loads (no partial file is ever taken for a checkpoint), and the
  atomic-write temp files are ignored by :func:`~finetune_kit.storage.checkpoint.find_checkpoint`;
* ``finetune-kit train --resume RUN/last.ckpt`` runs to the end (a trial killed before the
  first checkpoint starts again with ``--overwrite``), and its final weights equal the
  reference run's bit for bit (CPU, ``deterministic = true``), as do its metrics.

The trials' CLI processes are forked from a server that imported finetune_kit once
(tests/reliability/kill_helpers.py); the reference is also run as a plain ``python -m finetune_kit``
subprocess, and both references must agree, so forking changes nothing.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from finetune_kit.errors import CheckpointError
from finetune_kit.storage.checkpoint import find_checkpoint, load_checkpoint
from tests.reliability import kill_helpers

CONFIG = """
[data]
dataset = "fake"
val_fraction = 0.2
options = {train_size = 240, test_size = 20, num_classes = 3, in_channels = 1, image_size = 16}
[loader]
batch_size = 16
[model]
name = "lenet"
dropout = 0.2
options = {input_size = 16}
[optim]
scheduler = "onecycle"
[train]
epochs = 4
device = "cpu"
deterministic = true
checkpoint_every = 1
progress = false
"""
STEPS = 48  # 192 training images / 16 per batch * 4 epochs; a checkpoint after every step
RANDOM_TRIALS, ON_WRITE_TRIALS, SELF_KILL_TRIALS = 14, 8, 6
CHILD_TIMEOUT = 120.0
METRICS_COMPARED = ("epoch", "step", "train_loss", "train_accuracy", "lr", "val_loss", "val_accuracy")


def train_argv(config: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(config), "--output-dir", str(run), "--no-test", *extra]


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [{k: row[k] for k in METRICS_COMPARED} for row in csv.DictReader(handle)]


@dataclass
class Reference:
    config: Path
    weights: dict[str, torch.Tensor]
    metrics: list[dict[str, str]]
    seconds: float  # wall time of one forked CLI run, start to exit


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    root = tmp_path_factory.mktemp("kill-reference")
    config = root / "run.toml"
    config.write_text(CONFIG)
    plain = root / "plain"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "finetune_kit", *train_argv(config, plain)]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        kill_helpers.boot()  # the forkserver imports finetune_kit meanwhile
        _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    child = kill_helpers.start_cli(train_argv(config, root / "forked"), root / "forked.log")
    assert child.wait(CHILD_TIMEOUT) == 0, (root / "forked.log").read_text()
    seconds = time.monotonic() - child.started
    weights = model_weights(plain / "last.ckpt")
    assert load_checkpoint(plain / "last.ckpt")["position"]["global_step"] == STEPS
    assert same_weights(weights, model_weights(root / "forked" / "last.ckpt"))
    assert metrics(plain) == metrics(root / "forked")
    return Reference(config, weights, metrics(plain), seconds)


@dataclass
class Trial:
    index: int
    how: str  # "random", "on_write" or a KILL_PHASES name
    delay: float = 0.0  # seconds after start (random, on_write)
    nth: int = 0  # which checkpoint write (self-kill phases)


@dataclass
class Outcome:
    trial: Trial
    killed_status: int
    temp_left: list[str]
    checkpoints: list[str]
    resumed_from: int | None  # global step of last.ckpt, None: no checkpoint, started again
    problems: list[str]


def make_trials(seconds: float, seed: int = 12) -> list[Trial]:
    rng = random.Random(seed)
    trials = [Trial(0, "random", delay=rng.uniform(0.02, 0.95) * seconds) for _ in range(RANDOM_TRIALS)]
    trials += [Trial(0, "on_write", delay=rng.uniform(0.0, 0.9) * seconds) for _ in range(ON_WRITE_TRIALS)]
    phases = kill_helpers.KILL_PHASES
    trials += [Trial(0, phases[i % len(phases)], nth=rng.randint(1, STEPS)) for i in range(SELF_KILL_TRIALS)]
    for index, trial in enumerate(trials):
        trial.index = index
    return trials


def kill_run(trial: Trial, config: Path, run: Path, log: Path) -> int:
    """Start the CLI run and kill it as the trial says; its exit status (-9: SIGKILL)."""
    argv = train_argv(config, run)
    if trial.how in kill_helpers.KILL_PHASES:
        return kill_helpers.start_cli(argv, log, trial.how, trial.nth).wait(CHILD_TIMEOUT)
    child = kill_helpers.start_cli(argv, log)
    wake = child.started + trial.delay
    while time.monotonic() < wake and child.process.is_alive():
        time.sleep(0.001)
    if trial.how == "on_write":
        kill_helpers.kill_when_writing(child, run, deadline=time.monotonic() + CHILD_TIMEOUT)
    else:
        child.kill()
    return child.process.exitcode


def check_checkpoints(run: Path, problems: list[str]) -> list[str]:
    """Every ``*.ckpt`` loads; ``find_checkpoint`` never picks a temp file. Returns the names."""
    names = sorted(p.name for p in run.glob("*.ckpt")) if run.is_dir() else []
    for name in names:
        try:
            load_checkpoint(run / name)
        except CheckpointError as exc:
            problems.append(f"{name} does not load: {exc}")
    if run.is_dir():
        try:
            found = find_checkpoint(run)
        except CheckpointError:
            found = None
        if found is not None and found.name not in names:
            problems.append(f"find_checkpoint picked {found.name}")
        if found is None and "last.ckpt" in names:
            problems.append("find_checkpoint missed last.ckpt")
    return names


def run_trial(trial: Trial, ref: Reference, root: Path) -> Outcome:
    base = root / f"trial-{trial.index:02d}"
    base.mkdir()
    run = base / "run"
    status = kill_run(trial, ref.config, run, base / "killed.log")
    temp_left = kill_helpers.temp_files(run)
    problems: list[str] = []
    names = check_checkpoints(run, problems)
    if problems:  # a partial checkpoint: nothing sensible to resume from
        return Outcome(trial, status, temp_left, names, None, problems)
    resumed_from = None
    if "last.ckpt" in names:
        resumed_from = load_checkpoint(run / "last.ckpt")["position"]["global_step"]
        argv = ["train", "--resume", str(run / "last.ckpt"), "--no-test"]
    else:
        argv = train_argv(ref.config, run, "--overwrite")  # nothing to resume: start again
    resumed = kill_helpers.start_cli(argv, base / "resumed.log").wait(CHILD_TIMEOUT)
    if resumed != 0:
        problems.append(
            f"`finetune-kit {' '.join(argv)}` exited {resumed}: {(base / 'resumed.log').read_text()[-2000:]}"
        )
    else:
        check_checkpoints(run, problems)
        if not same_weights(model_weights(run / "last.ckpt"), ref.weights):
            problems.append("final weights differ from the uninterrupted run")
        if metrics(run) != ref.metrics:
            problems.append("metrics.csv differs from the uninterrupted run")
    return Outcome(trial, status, temp_left, names, resumed_from, problems)


def summary(outcomes: list[Outcome], seconds: float) -> str:
    lines = [f"{len(outcomes)} kill trials in {seconds:.1f} s"]
    for o in outcomes:
        t = o.trial
        what = f"{t.how} {t.delay:.2f}s" if t.how in ("random", "on_write") else f"{t.how} #{t.nth}"
        where = (
            f"resumed at step {o.resumed_from}"
            if o.resumed_from is not None
            else "not resumed"
            if o.problems
            else "no checkpoint, restarted"
        )
        lines.append(
            f"  {t.index:2d} {what:22s} status {o.killed_status:3d}  {where:26s} "
            f"temp left: {len(o.temp_left)}  {'; '.join(o.problems) or 'ok'}"
        )
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigkill_at_random_moments_then_resume_is_exact(reference, tmp_path):
    trials = make_trials(reference.seconds)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda t: run_trial(t, reference, tmp_path), trials))
    report = summary(outcomes, time.monotonic() - start)
    print(report)
    assert len(outcomes) >= 20
    assert not [o for o in outcomes if o.problems], report
    killed = [o for o in outcomes if o.killed_status == -9]
    assert len(killed) >= 20, report
    resumed = [o for o in outcomes if o.resumed_from is not None]
    assert len(resumed) >= 15, report  # most kills land after the first checkpoint
    assert any(o.temp_left for o in outcomes), report  # some kills did land mid-write


def test_kill_between_last_and_best_checkpoint_keeps_best_exact(reference, tmp_path):
    """Killed at the epoch end, just before the top-k/best checkpoint (which is written before
    that epoch's last.ckpt): the newest last.ckpt is the step checkpoint taken before validation,
    and after the resume best.ckpt holds the same weights as the uninterrupted run's."""
    improvements = []  # epochs (1-based) at which the reference wrote a new top-1 checkpoint
    best = None
    for row in reference.metrics:
        if best is None or float(row["val_accuracy"]) > best:
            best = float(row["val_accuracy"])
            improvements.append(int(row["epoch"]))
    run = tmp_path / "run"
    # Kill the run just before it writes the checkpoint of its best epoch.
    killed = kill_helpers.start_cli(
        train_argv(reference.config, run),
        tmp_path / "killed.log",
        kill_helpers.TOP_K_PHASE,
        len(improvements),
    )
    assert killed.wait(CHILD_TIMEOUT) == -9
    position = load_checkpoint(run / "last.ckpt")["position"]
    assert position["epoch"] == improvements[-1] - 1  # the epoch's end was not recorded yet
    argv = ["train", "--resume", str(run / "last.ckpt"), "--no-test"]
    assert kill_helpers.start_cli(argv, tmp_path / "resumed.log").wait(CHILD_TIMEOUT) == 0
    assert same_weights(model_weights(run / "last.ckpt"), reference.weights)
    expected = model_weights(reference.config.parent / "plain" / "best.ckpt")
    assert same_weights(model_weights(run / "best.ckpt"), expected)
    names = sorted(p.name for p in run.glob("*.ckpt"))
    assert names == sorted(p.name for p in (reference.config.parent / "plain").glob("*.ckpt"))
