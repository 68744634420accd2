"""The run-directory lock, with real processes: one holder, refusals that name it, stale locks.

Each other process is forked from the test process (no new import of torch), holds the lock
as a run would, and reports through a pipe.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import pytest

from finetune_kit.errors import OutputDirError
from finetune_kit.storage import run_lock
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.storage.run_lock import LOCK_FILE, RunLock, live_owner

CTX = multiprocessing.get_context("fork")


def _hold(root: str, conn, how: str) -> None:
    """Child: take the lock as a run does, say so, then wait for the word to leave."""
    run = RunDir.create(root) if how == "create" else RunDir.for_resume(root)
    conn.send(("locked", os.getpid()))
    conn.recv()
    run.release()
    conn.send("released")


def _try(root: str, conn, start) -> None:
    """Child: wait for the start signal, then try to take the lock and hold it briefly."""
    start.wait()
    try:
        lock = RunLock.acquire(root)
    except OutputDirError as exc:
        conn.send(("refused", str(exc)))
        return
    conn.send(("locked", os.getpid()))
    conn.recv()
    lock.release()


def holder(root: Path, how: str = "create"):
    parent, child = CTX.Pipe()
    process = CTX.Process(target=_hold, args=(str(root), child, how))
    process.start()
    assert parent.poll(30), "the holder did not lock in time"
    assert parent.recv()[0] == "locked"
    return process, parent


def test_a_second_run_or_resume_is_refused_while_one_holds_the_directory(tmp_path):
    root = tmp_path / "run"
    process, conn = holder(root)
    try:
        owner = json.loads((root / LOCK_FILE).read_text())
        assert owner["pid"] == process.pid and owner["host"] == socket.gethostname()
        for attempt in (
            lambda: RunDir.create(root, overwrite=True),
            lambda: RunDir.for_resume(root),
            lambda: RunDir.check_available(root, overwrite=True),
        ):
            with pytest.raises(
                OutputDirError, match=rf"in use by process {process.pid} on .*nothing was changed"
            ):
                attempt()
        assert live_owner(root)["pid"] == process.pid
    finally:
        conn.send("go")
        assert conn.recv() == "released"
        process.join(10)
    assert not (root / LOCK_FILE).exists()
    RunDir.for_resume(root).release()  # free again


def test_a_killed_holder_leaves_a_stale_lock_that_a_resume_takes_over(tmp_path):
    root = tmp_path / "run"
    process, _ = holder(root)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    assert (root / LOCK_FILE).exists()  # SIGKILL left it behind
    assert live_owner(root) is None
    run = RunDir.for_resume(root)
    assert json.loads((root / LOCK_FILE).read_text())["pid"] == os.getpid()
    run.release()
    assert not (root / LOCK_FILE).exists()


def test_only_one_of_many_simultaneous_processes_gets_the_lock(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    start = CTX.Event()
    pipes, processes = [], []
    for _ in range(6):
        parent, child = CTX.Pipe()
        process = CTX.Process(target=_try, args=(str(root), child, start))
        process.start()
        pipes.append(parent)
        processes.append(process)
    start.set()
    answers = [conn.recv() if conn.poll(30) else ("timeout", "") for conn in pipes]
    winners = [conn for conn, answer in zip(pipes, answers, strict=True) if answer[0] == "locked"]
    refused = [answer[1] for answer in answers if answer[0] == "refused"]
    assert len(winners) == 1 and len(refused) == 5, answers
    assert all("in use by" in text for text in refused)
    winners[0].send("go")
    for process in processes:
        process.join(10)
    assert not (root / LOCK_FILE).exists()


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    first = RunDir.create(tmp_path / "run")
    second = RunDir.for_resume(tmp_path / "run")  # e.g. fit() then fit(resume=...) in one script
    assert first.lock is second.lock
    second.release()
    assert (tmp_path / "run" / LOCK_FILE).exists()
    first.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_without_flock_staleness_is_told_by_the_process_id(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "fcntl", None)
    root = tmp_path / "run"
    root.mkdir()
    dead = CTX.Process(target=os.getpid)
    dead.start()
    dead.join()
    owner = {"pid": dead.pid, "host": socket.gethostname(), "started": "x", "command": "x"}
    (root / LOCK_FILE).write_text(json.dumps(owner))
    RunLock.acquire(root).release()  # the owner is gone: taken over
    owner["pid"] = os.getppid()  # a live process that is not this one
    (root / LOCK_FILE).write_text(json.dumps(owner))
    with pytest.raises(OutputDirError, match=f"in use by process {os.getppid()}"):
        RunLock.acquire(root)
    owner["host"] = "another-host"
    (root / LOCK_FILE).write_text(json.dumps(owner))
    with pytest.raises(OutputDirError, match="another-host"):
        RunLock.acquire(root)


def test_a_run_that_ended_gives_the_directory_back_for_its_report(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.held():
        assert (tmp_path / "run" / LOCK_FILE).exists()
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    with run.writing("the test report"):  # takes the lock again for the write
        assert (tmp_path / "run" / LOCK_FILE).exists()
        (tmp_path / "run" / "report.txt").write_text("ok")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.txt"]
