"""Run directories: never overwrite silently, never write outside."""

from __future__ import annotations

import os

import pytest

from finetune_kit.errors import OutputDirError
from finetune_kit.storage.run_dir import RunDir


def test_new_directory_is_created(tmp_path):
    run = RunDir.create(tmp_path / "a" / "b")
    assert run.root.is_dir()


def test_existing_non_empty_directory_is_refused_and_untouched(tmp_path):
    run_root = tmp_path / "run"
    run_root.mkdir()
    (run_root / "config.toml").write_text("x")
    (run_root / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="already exists.*--overwrite"):
        RunDir.create(run_root)
    assert (run_root / "notes.txt").read_text() == "mine"


def test_overwrite_only_for_run_directories(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_text("meow")
    with pytest.raises(OutputDirError, match="does not look like a run directory"):
        RunDir.create(other, overwrite=True)
    run_root = tmp_path / "run"
    run_root.mkdir()
    (run_root / "config.toml").write_text("x")
    assert RunDir.create(run_root, overwrite=True).root == run_root


def test_empty_existing_directory_is_fine(tmp_path):
    RunDir.create(tmp_path)


def test_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputDirError, match="is a file"):
        RunDir.create(tmp_path / "f")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_non_root(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(OutputDirError, match="Cannot write"):
        RunDir.create(locked / "run")


def test_unwritable_directory(tmp_path):
    # A path below a regular file cannot be created, even by root.
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="Cannot write to run directory"):
        RunDir.create(tmp_path / "file" / "run")


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b.txt"])
def test_names_cannot_escape(tmp_path, name):
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(OutputDirError, match="outside the run directory"):
        run.path(name)


def test_nested_names_are_fine(tmp_path):
    run = RunDir.create(tmp_path / "run")
    assert run.path("plots/loss.png").parent.is_dir()


def test_resume_removes_its_own_leftover_temp_files_only(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.release()
    ours = [".last.ckpt.abc123xy.tmp", ".epoch=2-val_loss=0.5.ckpt.k_9zq0aa.tmp", ".split.json.a1b2c3d4.tmp"]
    theirs = ["notes.tmp", ".notes.txt.abcdefgh.tmp", ".mine.tmp", ".last.ckpt.tmp", ".last.ckpt.ab.tmp"]
    for name in ours + theirs:
        (run.root / name).write_bytes(b"partial")
    RunDir.for_resume(run.root).release()
    assert sorted(p.name for p in run.root.iterdir()) == sorted(theirs)
