"""Atomic writes of one file and of a group of files; finding one's own leftover temp files."""

from __future__ import annotations

import os

import pytest

from finetune_kit.storage import atomic
from finetune_kit.storage.atomic import atomic_write_group, stale_temp_files


def test_a_group_replaces_its_files_and_leaves_nothing_else(tmp_path):
    a, b = tmp_path / "model.safetensors", tmp_path / "model.json"
    atomic_write_group([(a, b"old weights"), (b, b"old description")])
    atomic_write_group([(a, b"new weights"), (b, b"new description")])
    assert (a.read_bytes(), b.read_bytes()) == (b"new weights", b"new description")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_a_failed_write_keeps_the_old_group(tmp_path, monkeypatch):
    a, b = tmp_path / "w.bin", tmp_path / "w.json"
    atomic_write_group([(a, b"1"), (b, b"1")])
    real = atomic._write_temp

    def second_fails(path, data):
        if path == b:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "_write_temp", second_fails)
    with pytest.raises(OSError, match="No space"):
        atomic_write_group([(a, b"2"), (b, b"2")])
    assert (a.read_bytes(), b.read_bytes()) == (b"1", b"1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin", "w.json"]


def test_the_commit_mark_goes_first_and_comes_back_last(tmp_path, monkeypatch):
    a, b = tmp_path / "w.bin", tmp_path / "w.json"
    atomic_write_group([(a, b"1"), (b, b"1")])
    seen = []
    real = os.replace

    def watch(src, dst):
        seen.append((os.path.basename(dst), b.exists()))
        real(src, dst)

    monkeypatch.setattr(os, "replace", watch)
    atomic_write_group([(a, b"2"), (b, b"2")])
    assert seen == [("w.bin", False), ("w.json", False)]  # no old mark beside new weights


def test_only_temp_files_of_owned_names_are_found(tmp_path):
    for name in (".last.ckpt.abcd1234.tmp", ".a.ckpt.abcd1234.tmp", ".x.ckpt.abc.tmp", ".notes.abcd1234.tmp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".link.ckpt.abcd1234.tmp").symlink_to(tmp_path / "elsewhere")
    found = [p.name for p in stale_temp_files(tmp_path, lambda name: name.endswith(".ckpt"))]
    assert found == [".a.ckpt.abcd1234.tmp", ".last.ckpt.abcd1234.tmp"]
