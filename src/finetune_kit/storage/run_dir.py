"""The run directory: where a run writes, and the rules that keep users' files safe.

A run owns one directory. It is created fresh; an existing one is never written into unless the
run resumes from it or ``overwrite=True`` is given, and even then only files the run itself
makes are replaced. Every file name is resolved inside the directory: a name with ``..`` or an
absolute path cannot escape it. While a run writes, it holds the directory's lock
(:class:`~finetune_kit.storage.run_lock.RunLock`), so a second run or a resume of the same
directory is refused instead of interleaving with it.

Example:
    >>> import tempfile, pathlib
    >>> run = RunDir.create(pathlib.Path(tempfile.mkdtemp()) / "exp1")
    >>> run.path("metrics.csv").name
    'metrics.csv'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from finetune_kit.errors import OutputDirError
from finetune_kit.storage.atomic import stale_temp_files
from finetune_kit.storage.paths import user_path
from finetune_kit.storage.run_lock import LOCK_FILE, RunLock, in_use_message, live_owner

__all__ = ["RunDir"]

MARKER = "config.toml"
RUN_FILES = (
    "config.toml",
    "trainable.txt",
    "split.json",
    "classes.json",
    "metrics.csv",
    "report.txt",
    "report.json",
)
"""Files a run writes besides its checkpoints (``*.ckpt``)."""


def is_run_file(name: str) -> bool:
    """Whether ``name`` is a file that a run writes in its directory (its own, to replace)."""
    return name.endswith(".ckpt") or name in RUN_FILES


class RunDir:
    """A checked, writable run directory.

    Use :meth:`create` for a new run and :meth:`for_resume` to continue one.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock: RunLock | None = None
        self.writer = False  # this process writes here (it took the lock once)

    @classmethod
    def create(cls, root: str | Path, *, overwrite: bool = False, write: bool = True) -> RunDir:
        """Make a new run directory, refusing to reuse one that holds files.

        Args:
            root: the directory (created with its parents).
            overwrite: allow a directory that holds a previous run (one with ``config.toml``);
                its run files are replaced as the new run writes them. A non-empty directory
                that is not a run directory is always refused.
            write: check and create it (False on the non-writing ranks of a distributed run,
                which call :meth:`check_available` before rank 0 creates it).

        Raises:
            OutputDirError: the directory exists and is not empty, or cannot be written.
        """
        run = cls(user_path(root, "output_dir"))
        if write:  # the other ranks of a distributed run checked before rank 0 writes
            cls.check_available(root, overwrite=overwrite)
            run._make_writable()
            run.lock, run.writer = RunLock.acquire(run.root), True
            try:  # again under the lock: another process may have started a run meanwhile
                cls.check_available(root, overwrite=overwrite)
            except OutputDirError:
                run.release()
                raise
        return run

    @staticmethod
    def check_available(root: str | Path, *, overwrite: bool = False) -> None:
        """Raise :class:`OutputDirError` if a new run may not use ``root`` (reads only)."""
        root = user_path(root, "output_dir")
        if root.exists() and not root.is_dir():
            raise OutputDirError(f"Output path {root} exists and is a file; choose a directory name.")
        owner = live_owner(root) if root.is_dir() else None
        if owner is not None:
            raise OutputDirError(in_use_message(root, owner))
        if root.is_dir() and any(p.name != LOCK_FILE for p in root.iterdir()):
            if not overwrite:
                resume = f"Resume it (--resume {root}), " if any(root.glob("*.ckpt")) else ""
                raise OutputDirError(
                    f"Run directory {root} already exists and is not empty; nothing was changed. "
                    f"{resume}Choose another --output-dir (output_dir=), or pass --overwrite "
                    "(overwrite=True) to replace its run files."
                )
            if not (root / MARKER).exists():
                raise OutputDirError(
                    f"Refusing to overwrite {root}: it is not empty and does not look like a run "
                    f"directory (no {MARKER}). Choose another --output-dir."
                )

    @staticmethod
    def is_run_dir(root: str | Path) -> bool:
        """Whether ``root`` holds a run (its ``config.toml`` and ``classes.json``)."""
        root = Path(root)
        return (root / MARKER).is_file() and (root / "classes.json").is_file()

    @classmethod
    def for_resume(cls, root: str | Path, *, write: bool = True) -> RunDir:
        """Reopen an existing run directory to continue writing into it."""
        root = user_path(root, "run directory")
        if not root.is_dir():
            raise OutputDirError(f"Cannot resume: run directory {root} does not exist.")
        run = cls(root)
        if write:
            run._make_writable()
            run.lock, run.writer = RunLock.acquire(root), True
            for leftover in stale_temp_files(root, is_run_file):  # writes a kill interrupted
                leftover.unlink(missing_ok=True)
        return run

    def release(self) -> None:
        """Give back the directory's lock (a no-op when it is not held)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @contextlib.contextmanager
    def held(self) -> Iterator[RunDir]:
        """Keep the lock taken by :meth:`create` / :meth:`for_resume` (or take it again, for a
        second ``fit`` of the same Trainer) while the block runs, then give it back (also when
        the block raises)."""
        if self.writer and self.lock is None:
            self.lock = RunLock.acquire(self.root)
        try:
            yield self
        finally:
            self.release()

    def _make_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise OutputDirError(
                f"Cannot write to run directory {self.root}: {exc.strerror or exc}. Check its "
                "permissions and free space, or choose another --output-dir."
            ) from None
        if not os.access(self.root, os.W_OK):  # pragma: no cover - caught by the probe above
            raise OutputDirError(f"Run directory {self.root} is not writable.")

    @contextlib.contextmanager
    def released_on_error(self) -> Iterator[RunDir]:
        """Give the lock back if the block raises (a run that fails to start holds nothing)."""
        try:
            yield self
        except BaseException:
            self.release()
            raise

    @contextlib.contextmanager
    def writing(self, what: str = "run files") -> Iterator[None]:
        """Turn a failed write inside the block (full disk, permissions) into one clear error.

        Raises:
            OutputDirError: naming the directory, the reason and the fix.
        """
        # files written after the run gave its lock back (the test report) take it again
        lock = RunLock.acquire(self.root) if self.writer and self.lock is None else None
        try:
            yield
        except OSError as exc:
            raise OutputDirError(
                f"Could not write {what} to {self.root}: {exc.strerror or exc}. Free some disk "
                "space (or fix the permissions), or choose another --output-dir."
            ) from None
        finally:
            if lock is not None:
                lock.release()

    def path(self, name: str) -> Path:
        """The path of ``name`` inside the run directory.

        Raises:
            OutputDirError: ``name`` is absolute or climbs out with ``..``.
        """
        candidate = Path(name)
        resolved_root = self.root.resolve()
        target = (resolved_root / candidate).resolve()
        if candidate.is_absolute() or resolved_root not in (target, *target.parents):
            raise OutputDirError(
                f"File name {name!r} would be written outside the run directory {self.root}; "
                "use a plain relative name such as 'best.ckpt'."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"
