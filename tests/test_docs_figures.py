"""The script that draws the documentation's figures runs (its ``--smoke`` mode, tiny fake data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "make_figures.py"


@pytest.fixture(scope="module")
def make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_draws_every_quick_figure(make_figures, tmp_path, default_plots):
    steps = ["quickstart", "freezing", "transfer", "scratch"]  # lr_find: the same path, slower
    written = make_figures.main(["--smoke", "--out", str(tmp_path), "--threads", "1", "--only", *steps])
    names = {p.name for p in written}
    expected = {"curves.png", "confusion.png", "per_class.png", "worst.png", "quickstart.json"}
    assert expected | {"freezing.png", "transfer.png", "scratch_errors.png"} <= names
    for path in written:
        assert path.parent == tmp_path and path.stat().st_size > 0  # nothing written into docs/
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG"


def test_smoke_needs_an_output_folder(make_figures):
    with pytest.raises(SystemExit):
        make_figures.main(["--smoke"])  # a smoke run never replaces the documentation's figures
