"""Where dataset files are found: root -> $FINETUNE_KIT_DATA -> cache -> system dirs -> download.

The search order for a named dataset (e.g. ``fashion_mnist``):

1. ``root=`` passed to :func:`~finetune_kit.data.create_datasets` -- the folder itself, its
   ``<name>/`` subfolder and the dataset's own layouts below it (torchvision's
   ``FashionMNIST/raw/``, ``cifar-10-batches-py/``);
2. every folder in ``$FINETUNE_KIT_DATA`` (``os.pathsep``-separated): ``<dir>/<name>/`` and the
   dataset's own layouts;
3. the cache, ``$XDG_CACHE_HOME/finetune_kit/<name>/`` (``~/.cache/finetune_kit/<name>/``);
4. system dataset folders, ``/usr/share/datasets/<system name>/`` (Debian's
   ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist/``). Set
   ``$FINETUNE_KIT_SYSTEM_DATA_DIRS`` (``os.pathsep``-separated; empty for none) to search other
   folders instead -- the test suite does;
5. a download from the official mirrors (torchvision's URLs and MD5 checksums) into the cache,
   unless ``download=False``, which never touches the network;
6. otherwise a :class:`DataError` that lists every place tried and the three ways to fix it.

Example:
    >>> from finetune_kit.data.sources import cache_dir
    >>> cache_dir().name
    'finetune_kit'
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finetune_kit.errors import DataError
from finetune_kit.storage.paths import user_path

__all__ = [
    "ENV_DATA",
    "ENV_SYSTEM_DIRS",
    "SourceSpec",
    "cache_dir",
    "find_source",
    "resolve_file",
    "system_data_dirs",
]

log = logging.getLogger("finetune_kit.data")

ENV_DATA = "FINETUNE_KIT_DATA"
ENV_SYSTEM_DIRS = "FINETUNE_KIT_SYSTEM_DATA_DIRS"
DEFAULT_SYSTEM_DIRS = ("/usr/share/datasets",)


@dataclass(frozen=True)
class SourceSpec:
    """What a dataset's files are called and where they may sit.

    Args:
        name: registry name, also the cache and ``$FINETUNE_KIT_DATA`` subfolder.
        title: human name used in messages ("Fashion-MNIST").
        files: the files that must all be present (without compression suffix).
        suffixes: accepted suffixes of each file, e.g. ``(".gz", "")``.
        layouts: subfolders, relative to a search folder, where the files may sit; ``""`` is the
            folder itself (only searched under ``root`` and ``<dir>/<name>``).
        system_names: folder names under the system dataset folders.
        download: a function filling a folder with the files, or None (cannot download).
        download_from: the URL(s), for messages.
        install_hint: a shell command that installs the files, if one exists.

    Example:
        >>> SourceSpec("demo", "Demo", files=("a.bin",)).layouts
        ('',)
    """

    name: str
    title: str
    files: tuple[str, ...]
    suffixes: tuple[str, ...] = ("",)
    layouts: tuple[str, ...] = ("",)
    system_names: tuple[str, ...] = ()
    download: Callable[[Path], None] | None = None
    download_from: str = ""
    install_hint: str = ""


@dataclass
class _Search:
    """The places tried so far and why each one failed, for the final error message."""

    tried: list[str] = field(default_factory=list)

    def note(self, label: str, detail: str) -> None:
        self.tried.append(f"{label}: {detail}")


def cache_dir() -> Path:
    """The cache folder: ``$XDG_CACHE_HOME/finetune_kit``, else ``~/.cache/finetune_kit``.

    Example:
        >>> cache_dir().name
        'finetune_kit'
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "finetune_kit"


def system_data_dirs() -> tuple[Path, ...]:
    """System dataset folders: ``$FINETUNE_KIT_SYSTEM_DATA_DIRS`` if set, else
    ``/usr/share/datasets``.

    Example:
        >>> isinstance(system_data_dirs(), tuple)
        True
    """
    value = os.environ.get(ENV_SYSTEM_DIRS)
    if value is None:
        return tuple(Path(d) for d in DEFAULT_SYSTEM_DIRS)
    return tuple(Path(d).expanduser() for d in value.split(os.pathsep) if d)


def resolve_file(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    """The first existing ``folder/stem+suffix``, or None.

    Example:
        >>> resolve_file(Path("/nonexistent"), "a", (".gz", "")) is None
        True
    """
    for suffix in suffixes:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _missing(spec: SourceSpec, folder: Path) -> list[str]:
    return [stem for stem in spec.files if resolve_file(folder, stem, spec.suffixes) is None]


def _check_folders(spec: SourceSpec, label: str, folders: list[Path], search: _Search) -> Path | None:
    """Return the first folder holding every file; note why each other one failed."""
    for folder in folders:
        if not folder.is_dir():
            search.note(label, f"{folder} (no such folder)")
            continue
        missing = _missing(spec, folder)
        if not missing:
            log.info("%s: using files in %s (%s)", spec.title, folder, label)
            return folder
        search.note(label, f"{folder} (missing {', '.join(missing)})")
    return None


def _below(base: Path, spec: SourceSpec, *, allow_bare: bool) -> list[Path]:
    """Candidate folders under ``base``: ``base/<name>/<layout>`` and the named layouts."""
    folders = [base / spec.name / layout for layout in spec.layouts]
    folders += [base / layout for layout in spec.layouts if layout and base / layout not in folders]
    if allow_bare:
        folders.insert(0, base)
    return folders


def _download(spec: SourceSpec, search: _Search) -> Path | None:
    target = cache_dir() / spec.name
    label = "download"
    if spec.download is None:
        search.note(label, f"not available for {spec.title}")
        return None
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target))
    try:
        log.info("%s: downloading from %s into %s", spec.title, spec.download_from, target)
        spec.download(staging)
        for item in staging.iterdir():
            destination = target / item.name
            if destination.is_dir():  # a partial earlier download
                shutil.rmtree(destination)
            shutil.move(str(item), str(destination))
    except (OSError, RuntimeError, ValueError) as exc:
        search.note(label, f"from {spec.download_from} into {target} failed ({exc})")
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _check_folders(spec, "downloaded", _below(target, spec, allow_bare=True), search)


def find_source(spec: SourceSpec, *, root: str | Path | None, download: bool) -> Path:
    """Find the folder holding all of a dataset's files, following the search order above.

    Args:
        spec: the dataset's file names and layouts.
        root: an explicit folder to search first, or None.
        download: whether step 5 may download the files (False never touches the network).

    Returns:
        The folder holding every file of ``spec.files``.

    Raises:
        DataError: not found anywhere; the message lists every place tried and how to fix it.

    Example:
        >>> import tempfile
        >>> spec = SourceSpec("demo", "Demo", files=("a.txt",))
        >>> d = tempfile.mkdtemp()
        >>> _ = open(f"{d}/a.txt", "w").write("hi")
        >>> str(find_source(spec, root=d, download=False)) == d
        True
    """
    search = _Search()
    steps: list[tuple[str, list[Path]]] = []
    if root is not None:
        steps.append(("root", _below(user_path(root, "root").expanduser(), spec, allow_bare=True)))
    else:
        search.note("root", "not given")
    env = os.environ.get(ENV_DATA)
    if env:
        for base in (Path(p).expanduser() for p in env.split(os.pathsep) if p):
            steps.append((f"${ENV_DATA}", _below(base, spec, allow_bare=False)))
    else:
        search.note(f"${ENV_DATA}", "not set")
    steps.append(("cache", _below(cache_dir(), spec, allow_bare=False)))
    system = [
        d / n / layout for d in system_data_dirs() for n in spec.system_names for layout in spec.layouts
    ]
    steps.append(("system", system))
    for label, folders in steps:
        found = _check_folders(spec, label, folders, search)
        if found is not None:
            return found
    if not download:
        search.note("download", "skipped (download=False)")
    else:
        found = _download(spec, search)
        if found is not None:
            return found
    raise DataError(_not_found_message(spec, search))


def _not_found_message(spec: SourceSpec, search: _Search) -> str:
    names = ", ".join(f"{stem}{spec.suffixes[0]}" for stem in spec.files)
    cache = cache_dir() / spec.name
    tried = "\n".join(f"  - {line}" for line in search.tried)
    third = f"`{spec.install_hint}`, or place" if spec.install_hint else "place"
    download = f" (or allow the download from {spec.download_from})" if spec.download_from else ""
    return (
        f"{spec.title} files not found. Looked in:\n{tried}\n"
        f"Fix it in one of three ways:\n"
        f"  1. pass root='/path/to/folder' holding {names};\n"
        f"  2. set {ENV_DATA}=/path/to/data with the files in /path/to/data/{spec.name}/;\n"
        f"  3. {third} the files by hand in {cache}/: {names}{download}."
    )
