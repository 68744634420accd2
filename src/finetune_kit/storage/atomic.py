"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write_text(path, "hello")
    >>> path.read_text()
    'hello'
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

__all__ = ["atomic_write_bytes", "atomic_write_group", "atomic_write_text", "stale_temp_files"]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write a file atomically: ``write(fileobj)`` fills a temp file that then replaces ``path``.

    Args:
        path: the final file.
        write: a callable taking a binary file object.

    Raises:
        OSError: the directory is not writable or the disk is full (the old file, if any, is
            left untouched and the temp file removed).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    data = text.encode("utf-8")
    atomic_write_bytes(path, lambda handle: handle.write(data))


def atomic_create_text(path: str | Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists: of several processes that try at once,
    exactly one creates it, and every reader sees the whole file or none.

    Returns:
        True when this call created the file, False when it existed already (it is unchanged).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "owner.json"
        >>> atomic_create_text(path, "first"), atomic_create_text(path, "second"), path.read_text()
        (True, False, 'first')
    """
    path = Path(path)
    tmp = _write_temp(path, text.encode("utf-8"))
    try:
        os.link(tmp, path)  # unlike rename, a link never replaces an existing file
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def is_temp_of(name: str, target: str) -> bool:
    """Whether file ``name`` is a temp file of an atomic write of ``target`` (same directory).

    Example:
        >>> is_temp_of(".study.json.k2j4.tmp", "study.json"), is_temp_of("notes.txt", "study.json")
        (True, False)
    """
    return name.startswith(f".{target}.") and name.endswith(".tmp")


def _write_temp(path: Path, data: bytes) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_group(files: Sequence[tuple[str | Path, bytes]]) -> None:
    """Replace several files of one directory as a unit: a reader sees the old group, or the new
    one, or the group without its last file -- never old and new files mixed.

    The last file is the group's commit mark (e.g. the description that names the others).
    Every new file is first written to a temp file and synced; then the old commit mark is
    removed, the other files are renamed into place, and the new commit mark is renamed last.
    A process killed at any moment therefore leaves the old group, the new group, or no commit
    mark (which readers take as "nothing here").

    Args:
        files: ``(path, bytes)`` pairs in one directory; the last one is the commit mark.

    Raises:
        OSError: a write failed (the temp files are removed; the old group is intact when the
            failure came before the renames).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write_group([(d / "w.bin", b"1"), (d / "w.json", b"{}")])
        >>> sorted(p.name for p in d.iterdir())
        ['w.bin', 'w.json']
    """
    paths = [Path(path) for path, _ in files]
    temps: list[Path] = []
    try:
        for path, (_, data) in zip(paths, files, strict=True):
            temps.append(_write_temp(path, data))
        paths[-1].unlink(missing_ok=True)  # from here on, readers see no group until the end
        _fsync_dir(paths[-1].parent)
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
        _fsync_dir(paths[-1].parent)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def stale_temp_files(directory: str | Path, owned: Callable[[str], bool]) -> list[Path]:
    """The temp files that interrupted atomic writes of ``owned`` file names left in ``directory``.

    Only names of the exact form these writes use (``.NAME.XXXXXXXX.tmp``, a regular file, not
    a link) whose ``NAME`` satisfies ``owned`` are listed; anything else is someone else's.

    Args:
        directory: where to look.
        owned: says whether a final file name is one the caller writes.

    Returns:
        The temp files, sorted.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name in (".last.ckpt.ab12cd34.tmp", ".mine.tmp", ".notes.txt.ab12cd34.tmp"):
        ...     _ = (d / name).write_bytes(b"")
        >>> [p.name for p in stale_temp_files(d, lambda name: name.endswith(".ckpt"))]
        ['.last.ckpt.ab12cd34.tmp']
    """
    found = []
    for entry in sorted(Path(directory).iterdir()):
        match = _TEMP.match(entry.name)
        if match and owned(match.group("name")) and entry.is_file() and not entry.is_symlink():
            found.append(entry)
    return found
