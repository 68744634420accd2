"""Shared test set-up: no network, no GPU required, small real data where it exists."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _NetworkRefused(socket.socket):
    """Only this machine stays reachable: Unix sockets and loopback (DataLoader workers,
    torch.distributed's store); anything else raises as if the network were down."""

    def _check(self, address):
        local = self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in LOOPBACK)
        if not local:
            raise OSError("network access is refused in the test suite")

    def connect(self, address):
        self._check(address)
        return super().connect(address)

    def connect_ex(self, address):
        self._check(address)
        return super().connect_ex(address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Every test runs with outgoing connections refused, so nothing can download by accident."""
    monkeypatch.setattr(socket, "socket", _NetworkRefused)
    monkeypatch.setattr(socket, "create_connection", _refuse)


def _refuse(address, *args, **kwargs):
    if address[0] not in LOOPBACK:
        raise OSError("network access is refused in the test suite")
    return _create_connection(address, *args, **kwargs)


_create_connection = socket.create_connection


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's ~/.cache and FINETUNE_KIT_DATA."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("TORCH_HOME", str(home / ".cache" / "torch"))
    monkeypatch.delenv("FINETUNE_KIT_DATA", raising=False)


@pytest.fixture(autouse=True)
def _figures_on_request(request, monkeypatch):
    """Runs here draw their figures only when a test asks for them.

    ``train.plots`` is on by default when matplotlib is installed, and a run's figures cost
    0.5-1.5 s of CPU on these machines, more than most of the tiny runs of the suite take to
    train. Tests that check figures set ``plots=True`` (or add a PlotCallback), or request the
    ``default_plots`` fixture to get the library's real default.
    """
    if "default_plots" not in request.fixturenames:
        import finetune_kit.training.setup

        monkeypatch.setattr(finetune_kit.training.setup, "plots_available", lambda: False)


@pytest.fixture
def default_plots() -> None:
    """Keep ``train.plots``'s default (on when matplotlib is installed) for this test."""


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The real Fashion-MNIST IDX files (Debian's dataset-fashion-mnist).

    Outside CI a machine without them skips the real-data tests; in CI (``CI`` set) their
    absence is a failure, since `make test` installs them.
    """
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        message = "dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return FASHION_MNIST_DIR


os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
