"""One writer per run directory: :class:`RunLock`, a lock file held while a run writes.

Two runs, or a run and a resume, writing the same directory would interleave their checkpoints
and logs. A run therefore holds ``RUN_DIR/.finetune_kit.lock`` while it writes: the file is
created with ``O_CREAT | O_EXCL`` (only one process can create it), names its owner (process
id, host, start time, command) and is held with an exclusive ``flock`` where the system has
one. A second process is refused with one clear line naming the owner.

A run killed with SIGKILL cannot remove its lock file, so a lock is *stale* when nobody holds
it any more: the ``flock`` is free (the kernel drops it when the owner dies, on any host that
shares the file system), or -- where ``flock`` is not available -- the owner process no longer
exists on this host. A stale lock is taken over, so a killed run never blocks its resume.
Within one process the lock is re-entrant: a Trainer that resumes its own run directory is not
refused by its earlier self.

Example:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> lock = RunLock.acquire(run)
    >>> (run / LOCK_FILE).exists(), RunLock.acquire(run) is lock  # re-entrant in one process
    (True, True)
    >>> lock.release(); (run / LOCK_FILE).exists()  # still held by the first acquire
    True
    >>> lock.release(); (run / LOCK_FILE).exists()
    False
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from finetune_kit.errors import OutputDirError

try:  # POSIX; elsewhere staleness is told by the owner's process id alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunLock", "in_use_message", "live_owner"]

LOCK_FILE = ".finetune_kit.lock"
"""The lock file's name inside a run directory."""

_HELD: dict[Path, RunLock] = {}  # the locks this process holds, by resolved directory
_GUARD = threading.Lock()


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 4096).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _pid_alive(pid: Any) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _try_flock(fd: int) -> bool | None:
    """True: we hold the flock; False: another process does; None: no flock on this system."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network or FUSE mounts)
        return None
    return True


class RunLock:
    """An exclusive lock on a run directory, held by this process (see the module docstring).

    Use :meth:`acquire`; :meth:`release` gives it back (a process that exits, or is killed,
    gives it back too: the next process finds it stale).
    """

    def __init__(self, root: Path, fd: int) -> None:
        self.root = root
        self.path = root / LOCK_FILE
        self._fd: int | None = fd
        self._users = 1

    @classmethod
    def acquire(cls, root: str | Path) -> RunLock:
        """Lock the existing directory ``root`` for this process.

        Args:
            root: the run directory (it must exist).

        Returns:
            The lock (the same object again when this process holds it already).

        Raises:
            OutputDirError: another live process holds the lock (its id, host and command are
                named), or the lock file cannot be written.
        """
        root = Path(root)
        key = root.resolve()
        with _GUARD:
            held = _HELD.get(key)
            if held is not None and held._fd is not None:
                held._users += 1
                return held
            for _ in range(5):  # a rival may create or remove the file between our steps
                fd = cls._open(root)
                if fd is not None:
                    lock = cls(root, fd)
                    _HELD[key] = lock
                    return lock
        raise OutputDirError(
            f"Could not lock run directory {root}: its lock file {root / LOCK_FILE} keeps "
            "changing. Is another finetune-kit process starting there? Try again."
        )

    @classmethod
    def _open(cls, root: Path) -> int | None:
        """A locked file descriptor of the lock file, None to retry, or OutputDirError."""
        path = root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                return None
            created = False
        except OSError as exc:
            raise OutputDirError(
                f"Cannot create the lock file of run directory {root}: {exc.strerror or exc}. "
                "Check its permissions, or choose another --output-dir."
            ) from None
        try:
            claimed = cls._claim(fd, path, created)
        except BaseException:
            os.close(fd)
            raise
        if not claimed:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _claim(fd: int, path: Path, created: bool) -> bool:
        """Lock ``fd`` and write our name in it; False: the file was replaced meanwhile, retry."""
        flocked = _try_flock(fd)
        if flocked is False or (flocked is None and not created and _alive_owner(fd)):
            raise OutputDirError(in_use_message(path.parent, _read_owner(fd)))
        try:  # the file we locked must still be the one at the path (not removed meanwhile)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return False
        except FileNotFoundError:
            return False
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(_owner()).encode("utf-8"))
        os.fsync(fd)
        return True

    def release(self) -> None:
        """Give the lock back (when the last user in this process releases it)."""
        with _GUARD:
            if self._fd is None:
                return
            self._users -= 1
            if self._users > 0:
                return
            _HELD.pop(self.root.resolve(), None)
            try:
                if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                    self.path.unlink()
            except FileNotFoundError:
                pass
            finally:
                os.close(self._fd)  # closing drops the flock
                self._fd = None

    @property
    def held(self) -> bool:
        """Whether this lock is still held."""
        return self._fd is not None

    def __repr__(self) -> str:
        return f"RunLock({str(self.root)!r}, held={self.held})"


def _alive_owner(fd: int) -> bool:
    """Without flock: the lock is live when its owner runs on this host (or on another one)."""
    owner = _read_owner(fd)
    if owner.get("host") != socket.gethostname():
        return bool(owner)  # another host's process cannot be checked: assume it is live
    return _pid_alive(owner.get("pid"))


def in_use_message(root: Path, owner: dict[str, Any]) -> str:
    """The refusal when another process holds ``root``'s lock."""
    who = (
        f"process {owner.get('pid')} on {owner.get('host')} (started {owner.get('started')}: "
        f"{owner.get('command') or '?'})"
        if owner
        else "another process"
    )
    return (
        f"Run directory {root} is in use by {who}; nothing was changed. Wait for that run to "
        f"finish, or choose another --output-dir. If no such process runs any more, delete "
        f"{root / LOCK_FILE}."
    )


def live_owner(root: str | Path) -> dict[str, Any] | None:
    """The owner of ``root``'s lock when another live process holds it, else None (reads only).

    Example:
        >>> import tempfile
        >>> live_owner(tempfile.mkdtemp()) is None
        True
    """
    root = Path(root)
    if root.resolve() in _HELD:
        return None  # this process holds it
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDWR)
    except OSError:
        return None
    try:
        flocked = _try_flock(fd)
        live = flocked is False or (flocked is None and _alive_owner(fd))
        return (_read_owner(fd) or {"pid": "?"}) if live else None
    finally:
        os.close(fd)  # also drops a flock taken just to look


@atexit.register
def _release_all() -> None:
    """At a normal exit, remove the lock files this process still holds."""
    for lock in list(_HELD.values()):
        lock._users = 1
        lock.release()
