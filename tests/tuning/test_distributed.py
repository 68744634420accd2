"""Trials as DDP runs: ``torchrun -m finetune_kit tune`` on two Gloo processes on the CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_kit.storage.checkpoint import load_checkpoint
from finetune_kit.tuning.distributed import Coordinator

from .conftest import study_text

HERE = Path(__file__).parent


def test_one_process_shares_with_itself():
    coordinator = Coordinator.for_config("cpu")
    assert coordinator.is_main and coordinator.group is None
    assert coordinator.share({"optim.lr": 0.1}) == {"optim.lr": 0.1}


@pytest.mark.slow
def test_each_trial_is_a_ddp_run_under_torchrun(tmp_path):
    """Rank 0 runs the study; both ranks train each trial, stop a pruned one together, retrain."""
    config = tmp_path / "study.toml"
    config.write_text(study_text(epochs=3))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={port}", str(HERE / "ddp_study.py"), str(config), str(tmp_path / "study"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("rank  trial  state") == 1  # rank 0 runs the study and prints
    study = tmp_path / "study"
    assert sorted(p.name for p in study.glob("trial-*")) == ["trial-0000", "trial-0001"]
    for number, epochs in ((0, 3), (1, 1)):  # trial 1 was pruned after its first epoch
        run = study / f"trial-{number:04d}"
        assert len(load_checkpoint(run / "last.ckpt")["rng_per_rank"]) == 2  # both ranks trained it
        assert len((run / "metrics.csv").read_text().splitlines()) == 1 + epochs  # written once
    assert json.loads((study / "trial-0001" / "trial.json").read_text())["state"] == "pruned"
    final = study / "final-trial-0000"
    assert len(load_checkpoint(final / "last.ckpt")["rng_per_rank"]) == 2
    assert (final / "report.json").is_file() and done.stdout.count("f1-score") == 1
