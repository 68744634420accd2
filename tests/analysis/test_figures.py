"""Plots: valid PNGs of curves and image grids (with heatmaps); no matplotlib."""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

from finetune_kit.analysis.figures import (
    PNG_SIGNATURE,
    denormalize,
    plot_history,
    plot_images,
    require_matplotlib,
)
from finetune_kit.callbacks.plots import PlotCallback
from finetune_kit.data import BatchTransform
from finetune_kit.errors import ConfigError, ShapeError

ROWS = [
    {
        "epoch": 1,
        "train_loss": 1.1,
        "train_accuracy": 0.4,
        "val_loss": 1.0,
        "val_accuracy": 0.5,
        "lr": 0.1,
        "lr_stem": 0.01,
        "lr_head": 0.1,
    },
    {
        "epoch": 2,
        "train_loss": 0.7,
        "train_accuracy": 0.7,
        "val_loss": 0.8,
        "val_accuracy": 0.6,
        "lr": 0.05,
        "lr_stem": 0.005,
        "lr_head": 0.05,
    },
    {"epoch": 3, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": float("nan"), "lr": 0.01},
]


def assert_png(path, min_side=100):
    """A real PNG: the signature, decodable by Pillow, of a sensible size."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.load()
    assert min_side <= width <= 5000 and min_side <= height <= 5000
    return width, height


def test_plot_history_writes_a_png(tmp_path):
    out = plot_history(ROWS, tmp_path / "sub" / "curves.png")
    assert out == tmp_path / "sub" / "curves.png"
    width, height = assert_png(out)
    assert width > 2 * height  # three panels side by side
    assert_png(plot_history([{"epoch": 1, "train_loss": 0.3}], tmp_path / "one.png"))
    with pytest.raises(ConfigError, match="no epoch rows"):
        plot_history([], tmp_path / "none.png")


def test_plot_images_gray_and_rgb(tmp_path):
    gray = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    assert_png(plot_images(gray, [f"img {i}\nline 2" for i in range(5)], tmp_path / "g.png"))
    rgb = torch.rand(3, 3, 10, 10)
    assert_png(plot_images(rgb, ["a", "b", "c"], tmp_path / "rgb.png", ncols=2))
    with pytest.raises(ShapeError, match="3 titles"):
        plot_images(gray, ["a", "b", "c"], tmp_path / "bad.png")
    with pytest.raises(ShapeError, match="C = 1 or 3"):
        plot_images(torch.zeros(2, 2, 4, 4), ["a", "b"], tmp_path / "bad.png")


def test_heatmaps_are_drawn_over_the_images(tmp_path):
    gray = torch.zeros(2, 1, 12, 12, dtype=torch.uint8)  # black images: any colour is the heat
    heat = torch.zeros(2, 12, 12)
    heat[:, :6] = 1.0  # hot upper half
    assert_png(plot_images(gray, ["a", "b"], tmp_path / "plain.png"), min_side=50)
    assert_png(plot_images(gray, ["a", "b"], tmp_path / "heat.png", heatmaps=heat), min_side=50)
    with Image.open(tmp_path / "plain.png") as plain, Image.open(tmp_path / "heat.png") as hot:
        plain_colours = {c for _, c in plain.convert("RGB").getcolors(1 << 20)}
        hot_pixels = [c for _, c in hot.convert("RGB").getcolors(1 << 20)]
    reds = [c for c in hot_pixels if c[0] > 100 and c[2] < 60 and c not in plain_colours]
    assert reds, "the hot half of the heatmap should be drawn in red over the black image"
    with pytest.raises(ShapeError, match="heatmaps must be"):
        plot_images(gray, ["a", "b"], tmp_path / "bad.png", heatmaps=torch.zeros(2, 6, 6))


def test_denormalize_inverts_the_loader_normalisation():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    assert torch.equal(denormalize(BatchTransform(mean, std)(x), mean, std), x)
    with pytest.raises(ShapeError):
        denormalize(torch.zeros(1, 3, 2, 2), (0.5,), (0.5,))


def test_missing_matplotlib_gives_an_install_hint(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install finetune-kit\[plots\]"):
        PlotCallback()
    with pytest.raises(ConfigError, match="matplotlib"):
        require_matplotlib()
    with pytest.raises(ConfigError, match="matplotlib"):
        plot_history(ROWS, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_docstring_examples_run(tmp_path, monkeypatch):
    import doctest
    import importlib

    # the module, even where fk exports a function of the same name
    module = importlib.import_module("finetune_kit.analysis.figures")
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
