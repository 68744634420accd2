"""Helpers of tests/reliability/test_kill.py: CLI training runs in processes that get SIGKILLed.

Each run is ``finetune_kit.cli.main(argv)`` -- the function behind the ``finetune-kit``
command -- in its own process, forked from a multiprocessing *forkserver* that imported
finetune_kit once. A child pays for its own set-up and training but not for the ~4 s import
of torch, so twenty-odd kill trials fit in the test's time budget. Killing such a child with
SIGKILL is as abrupt as killing ``finetune-kit train`` from a shell: no handler, no ``finally``,
no flush.

A child can also kill *itself* with SIGKILL at an exact moment of a checkpoint write (half the
bytes written; the temp file complete but not renamed; renamed but the directory not yet
synced), by wrapping :func:`finetune_kit.storage.atomic.atomic_write_bytes` and ``os.replace``.
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KILL_PHASES = ("half_written", "before_rename", "after_rename")
TOP_K_PHASE = "before_top_k"  # just before the nth best-k checkpoint (``epoch=E-...ckpt``)

_CONTEXT: Any = None


def context() -> Any:
    """The forkserver context, with finetune_kit preloaded in the server (started on first use)."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(
            ["tests.reliability.kill_helpers", "finetune_kit.cli", "finetune_kit.training.from_config"]
        )
        _CONTEXT = ctx
    return _CONTEXT


def boot() -> None:
    """Start the forkserver now (it imports finetune_kit in the background)."""
    context()
    multiprocessing.forkserver.ensure_running()


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install_self_kill(phase: str, nth: int) -> None:
    """SIGKILL this process during the ``nth`` checkpoint write (1-based), at ``phase``."""
    from finetune_kit.storage import checkpoint

    count = {"write": 0, "replace": 0}
    real_write, real_replace = checkpoint.atomic_write_bytes, os.replace

    def write(path: Any, fill: Any) -> None:
        count["write"] += 1
        if phase != "half_written" or count["write"] != nth:
            return real_write(path, fill)

        def half(handle: Any) -> None:
            buffer = io.BytesIO()
            fill(buffer)
            data = buffer.getvalue()
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
            _die()

        return real_write(path, half)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        count["replace"] += 1
        if phase == "before_rename" and count["replace"] == nth:
            _die()
        real_replace(src, dst, *args, **kwargs)
        if phase == "after_rename" and count["replace"] == nth:
            _die()

    checkpoint.atomic_write_bytes = write  # children only: each runs one training job
    os.replace = replace


def _install_top_k_kill(nth: int) -> None:
    """SIGKILL this process when the Trainer is about to write its ``nth`` top-k checkpoint."""
    from finetune_kit.training.trainer import Trainer

    count = {"top_k": 0}
    real = Trainer.save_checkpoint

    def save_checkpoint(self: Trainer, name: str, **kwargs: Any) -> Path:
        if name.startswith("epoch="):
            count["top_k"] += 1
            if count["top_k"] == nth:
                _die()
        return real(self, name, **kwargs)

    Trainer.save_checkpoint = save_checkpoint


HOLD_PHASE = "hold:"  # "hold:PATH": pause after each checkpoint while the file PATH exists


def _install_hold(flag: str) -> None:
    """Pause the run after each checkpoint it writes, for as long as the file ``flag`` exists."""
    from finetune_kit.training.trainer import Trainer

    real = Trainer.save_checkpoint

    def save_checkpoint(self: Trainer, name: str, **kwargs: Any) -> Path:
        path = real(self, name, **kwargs)
        while os.path.exists(flag):
            time.sleep(0.01)
        return path

    Trainer.save_checkpoint = save_checkpoint


def run_cli(argv: list[str], log: str, kill_phase: str | None = None, kill_nth: int = 0) -> None:
    """Child entry point: ``finetune-kit ARGV``, output in ``log``; exits with its status."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    import torch

    from finetune_kit.cli import main

    torch.set_num_threads(1)  # two trials run at once on two cores: no oversubscription
    if kill_phase is not None and kill_phase.startswith(HOLD_PHASE):
        _install_hold(kill_phase[len(HOLD_PHASE) :])
    elif kill_phase == TOP_K_PHASE:
        _install_top_k_kill(kill_nth)
    elif kill_phase is not None:
        _install_self_kill(kill_phase, kill_nth)
    status = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)


@dataclass
class Child:
    """A running CLI child process."""

    process: Any
    started: float = field(default_factory=time.monotonic)

    def kill(self) -> None:
        """SIGKILL the child (if it still runs) and reap it."""
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit; its exit status (negative: killed by that signal)."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            raise TimeoutError(f"CLI child {self.process.pid} still running after {timeout} s")
        return self.process.exitcode


def start_cli(argv: list[str], log: Path, kill_phase: str | None = None, kill_nth: int = 0) -> Child:
    """Start ``finetune-kit ARGV`` in a forked child; see :func:`run_cli`."""
    process = context().Process(target=run_cli, args=(argv, str(log), kill_phase, kill_nth))
    process.start()
    return Child(process)


def temp_files(run: Path) -> list[str]:
    """Names of atomic-write temp files (``.NAME.XXXX.tmp``) in a run directory."""
    try:
        names = [entry.name for entry in os.scandir(run)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(".") and n.endswith(".tmp"))


def kill_when_writing(child: Child, run: Path, deadline: float) -> bool:
    """SIGKILL ``child`` the moment a temp file appears in ``run`` (True) or at ``deadline``."""
    while time.monotonic() < deadline and child.process.is_alive():
        if temp_files(run):
            child.kill()
            return True
        time.sleep(0.0005)
    child.kill()
    return False


# ------------------------------------------------------------------ exports
EXPORT_PHASES = ("half_written", "before_invalidate", "after_invalidate", "between_renames", "after_commit")


def _install_export_kill(phase: str, description: str) -> None:
    """SIGKILL this process at ``phase`` of an export's group write (see atomic_write_group)."""
    import pathlib

    from finetune_kit.storage import atomic

    real_temp, real_replace, real_unlink = atomic._write_temp, os.replace, pathlib.Path.unlink
    replaced = {"count": 0}

    def write_temp(path: Any, data: bytes) -> Any:
        if phase == "half_written":
            real_temp(path, data[: len(data) // 2])
            _die()
        return real_temp(path, data)

    def unlink(self: Any, *args: Any, **kwargs: Any) -> None:
        if phase == "before_invalidate" and self.name == description:
            _die()
        real_unlink(self, *args, **kwargs)
        if phase == "after_invalidate" and self.name == description:
            _die()

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_replace(src, dst, *args, **kwargs)
        replaced["count"] += 1
        if (phase, replaced["count"]) in (("between_renames", 1), ("after_commit", 2)):
            _die()

    atomic._write_temp = write_temp  # children only: each runs one export
    pathlib.Path.unlink = unlink
    os.replace = replace


def run_export(source: str, target: str, log: str, phase: str | None) -> None:
    """Child entry point: ``export(source, target, overwrite=True)``, killed at ``phase``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    import torch

    from finetune_kit.inference import export

    torch.set_num_threads(1)
    if phase is not None:
        _install_export_kill(phase, "model.json")
    export(source, target, overwrite=True)
    sys.exit(0)


def start_export(source: Path, target: Path, log: Path, phase: str | None = None) -> Child:
    """Start an export in a forked child; see :func:`run_export`."""
    process = context().Process(target=run_export, args=(str(source), str(target), str(log), phase))
    process.start()
    return Child(process)
