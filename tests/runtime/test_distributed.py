"""DDP on the CPU: two gloo processes under torchrun match one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import finetune_kit as fk
from finetune_kit.runtime.distributed import DistEnv
from finetune_kit.storage.checkpoint import load_checkpoint

HERE = Path(__file__).parent
TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # gradient averaging over ranks rounds differently


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, fashion_mnist_dir):
    out = tmp_path_factory.mktemp("ddp")
    done = torchrun(str(HERE / "ddp_worker.py"), str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_two_processes_match_one_with_the_same_global_batch(ddp_runs, tmp_path):
    from tests.runtime import ddp_worker

    single = ddp_worker.trainer(ddp_worker.subset_bundle(), tmp_path, "single", 32)
    single.fit()
    ddp = model_state(ddp_runs / "ddp_full" / "last.ckpt")
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, **TOLERANCE, msg=key)
    # Metrics are reduced as sums of counts: the report equals the single-process one.
    report = single.test(print_report=False)
    ddp_report = json.loads((ddp_runs / "ddp_full" / "report.json").read_text())
    assert sum(map(sum, ddp_report["confusion"])) == 256  # every test image counted once
    assert ddp_report["confusion"] == report.confusion


def test_only_rank_zero_writes(ddp_runs):
    run = ddp_runs / "ddp_full"
    names = sorted(p.name for p in run.iterdir())
    assert names.count("metrics.csv") == 1
    assert not any(name.endswith(".tmp") for name in names)
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 3  # header and one row per epoch, written once


def test_resume_under_two_processes(ddp_runs):
    full = model_state(ddp_runs / "ddp_full" / "last.ckpt")
    resumed = model_state(ddp_runs / "ddp_cut" / "last.ckpt")
    for key, value in full.items():
        assert torch.equal(resumed[key], value), key


def test_frozen_backbone_strategy_under_ddp(ddp_runs):
    state = load_checkpoint(ddp_runs / "ddp_gradual" / "last.ckpt")
    assert state["position"]["epoch"] == 3
    assert len(state["added_groups"]) == 2  # two more stages unfroze after the first epoch


def test_cli_under_torchrun(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("""
[data]
dataset = "fake"
options = {train_size = 64, test_size = 16, num_classes = 3, in_channels = 1, image_size = 16}
[model]
name = "lenet"
options = {input_size = 16}
[loader]
batch_size = 8
[train]
epochs = 1
device = "cpu"
progress = false
""")
    done = torchrun(
        "-m", "finetune_kit", "train", "--config", str(config), "--output-dir", str(tmp_path / "run")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("f1-score") == 1  # the report is printed by rank 0 only
    assert (tmp_path / "run" / "last.ckpt").is_file()


def test_dist_env_parsing():
    assert DistEnv.from_environ({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}).rank == 2
    with pytest.raises(fk.ConfigError, match="Inconsistent torchrun environment"):
        DistEnv.from_environ({"WORLD_SIZE": "2", "RANK": "5"})
