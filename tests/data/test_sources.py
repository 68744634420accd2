"""The search order root -> $FINETUNE_KIT_DATA -> cache -> system dirs -> download -> DataError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune_kit.data.builtin import SOURCES
from finetune_kit.data.idx import write_idx
from finetune_kit.data.sources import (
    ENV_DATA,
    ENV_SYSTEM_DIRS,
    SourceSpec,
    cache_dir,
    find_source,
    system_data_dirs,
)
from finetune_kit.errors import DataError

SPEC = SourceSpec(
    "demo",
    "Demo",
    files=("a", "b"),
    suffixes=(".gz", ""),
    layouts=("", "Demo/raw"),
    system_names=("demo-set",),
)


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    system = tmp_path / "system"
    monkeypatch.setenv(ENV_SYSTEM_DIRS, str(system))
    return system


def fill(folder: Path, names=("a.gz", "b")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_root_itself_and_layouts(tmp_path: Path) -> None:
    assert find_source(SPEC, root=fill(tmp_path / "r1"), download=False) == tmp_path / "r1"
    tv = fill(tmp_path / "r2" / "Demo" / "raw")
    assert find_source(SPEC, root=tmp_path / "r2", download=False) == tv
    named = fill(tmp_path / "r3" / "demo")
    assert find_source(SPEC, root=tmp_path / "r3", download=False) == named


def test_order_root_env_cache_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_dirs: Path
) -> None:
    system = fill(no_system_dirs / "demo-set")
    assert find_source(SPEC, root=None, download=False) == system
    cache = fill(cache_dir() / "demo")
    assert find_source(SPEC, root=None, download=False) == cache
    env = fill(tmp_path / "env" / "demo")
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "env"))
    assert find_source(SPEC, root=None, download=False) == env
    root = fill(tmp_path / "root")
    assert find_source(SPEC, root=root, download=False) == root
    # a root without the files falls through to the next source
    assert find_source(SPEC, root=tmp_path / "empty", download=False) == env


def test_env_dir_itself_is_not_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files directly in $FINETUNE_KIT_DATA could belong to any dataset (MNIST and
    Fashion-MNIST share file names), so only <dir>/<name>/ and named layouts count."""
    fill(tmp_path / "env")
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "env"))
    with pytest.raises(DataError):
        find_source(SPEC, root=None, download=False)


def test_system_dirs_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SYSTEM_DIRS, "")
    assert system_data_dirs() == ()
    monkeypatch.delenv(ENV_SYSTEM_DIRS)
    assert system_data_dirs() == (Path("/usr/share/datasets"),)


def test_not_found_lists_every_place_and_three_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "env"))
    fill(tmp_path / "root", names=("a.gz",))
    with pytest.raises(DataError) as info:
        find_source(SOURCES["fashion_mnist"], root=tmp_path / "root", download=False)
    message = str(info.value)
    assert "Fashion-MNIST files not found" in message
    assert f"{tmp_path / 'root'} (missing train-images-idx3-ubyte" in message
    assert str(tmp_path / "env" / "fashion_mnist") in message
    assert str(cache_dir() / "fashion_mnist") in message
    assert str(tmp_path / "system" / "fashion-mnist") in message
    assert "download: skipped (download=False)" in message
    assert "pass root=" in message and f"set {ENV_DATA}=" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message


def test_download_failure_with_network_refused(tmp_path: Path) -> None:
    """conftest refuses sockets: the real torchvision download is attempted and fails cleanly."""
    with pytest.raises(DataError) as info:
        find_source(SOURCES["mnist"], root=None, download=True)
    message = str(info.value)
    assert "download: from https://ossci-datasets.s3.amazonaws.com/mnist/" in message
    assert "failed" in message
    assert list((cache_dir() / "mnist").glob(".download-*")) == []


def test_download_false_never_calls_the_downloader(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    spec = SourceSpec("demo", "Demo", files=("a",), download=lambda folder: calls.append(folder))
    with pytest.raises(DataError):
        find_source(spec, root=None, download=False)
    assert calls == []


def test_download_lands_in_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The downloader fills a staging folder; the files are moved into the cache and found."""
    import torchvision.datasets.utils as tvu

    fetched = []

    def fake_download_url(url, root, filename, md5):
        fetched.append((url, md5))
        write_idx(Path(root) / filename, torch.zeros(1, dtype=torch.uint8))

    monkeypatch.setattr(tvu, "download_url", fake_download_url)
    folder = find_source(SOURCES["fashion_mnist"], root=None, download=True)
    assert folder == cache_dir() / "fashion_mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f + ".gz" for f in SOURCES["fashion_mnist"].files
    )
    import torchvision.datasets as tvd

    assert fetched == [(tvd.FashionMNIST.mirrors[0] + f, md5) for f, md5 in tvd.FashionMNIST.resources]
