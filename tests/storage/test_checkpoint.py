"""Checkpoints: atomic writes, safe loads, RNG state capture."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from finetune_kit.errors import CheckpointError
from finetune_kit.storage.atomic import atomic_write_bytes
from finetune_kit.storage.checkpoint import (
    capture_rng_state,
    find_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 2, "nested": {"a": [1, 2]}}
    save_checkpoint(state, tmp_path / "x.ckpt")
    loaded = load_checkpoint(tmp_path / "x.ckpt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 2 and loaded["nested"] == {"a": [1, 2]}


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint({"model": {}, "epoch": 1}, path)

    def broken(handle):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_bytes(path, broken)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.ckpt"
    save_checkpoint({"model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "payload": _Exploit(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="Refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"model": _Exploit(str(marker))}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    torch.save({"w": torch.ones(1)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a finetune_kit checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_find_checkpoint_in_run_dir(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        find_checkpoint(tmp_path)
    save_checkpoint({"model": {}}, tmp_path / "last.ckpt")
    assert find_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    assert find_checkpoint(tmp_path / "last.ckpt") == tmp_path / "last.ckpt"


def test_rng_state_round_trip_through_a_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint({"model": {}, "rng": capture_rng_state()}, tmp_path / "r.ckpt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "r.ckpt")["rng"])
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])
