"""Plots: valid PNGs of curves, confusion matrix and image grids; top losses; no matplotlib."""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

import finetune_kit as fk
from finetune_kit.data import BatchTransform, DeviceLoader, ImageTensorDataset
from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.plots import (
    PNG_SIGNATURE,
    PlotCallback,
    denormalize,
    plot_confusion,
    plot_history,
    plot_images,
    require_matplotlib,
    top_losses,
)

ROWS = [
    {"epoch": 1, "train_loss": 1.1, "train_accuracy": 0.4, "val_loss": 1.0, "val_accuracy": 0.5,
     "lr": 0.1, "lr_g0": 0.1, "lr_g1": 0.01},
    {"epoch": 2, "train_loss": 0.7, "train_accuracy": 0.7, "val_loss": 0.8, "val_accuracy": 0.6,
     "lr": 0.05, "lr_g0": 0.05, "lr_g1": 0.005},
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


def test_plot_confusion_writes_a_png_and_checks_shapes(tmp_path):
    names = [f"class_{i}" for i in range(4)]
    matrix = [[5, 1, 0, 0], [2, 7, 1, 0], [0, 0, 9, 1], [0, 0, 0, 0]]  # an empty row is fine
    assert_png(plot_confusion(matrix, names, tmp_path / "c.png"))
    assert_png(plot_confusion(torch.tensor(matrix), names, tmp_path / "t.png"))
    with pytest.raises(ShapeError, match="4 class names"):
        plot_confusion([[1, 2], [3, 4]], names, tmp_path / "x.png")
    with pytest.raises(ShapeError, match="square"):
        plot_confusion([[1, 2, 3]], ["a"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_images_gray_and_rgb(tmp_path):
    gray = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    assert_png(plot_images(gray, [f"img {i}\nline 2" for i in range(5)], tmp_path / "g.png"))
    rgb = torch.rand(3, 3, 10, 10)
    assert_png(plot_images(rgb, ["a", "b", "c"], tmp_path / "rgb.png", ncols=2))
    with pytest.raises(ShapeError, match="3 titles"):
        plot_images(gray, ["a", "b", "c"], tmp_path / "bad.png")
    with pytest.raises(ShapeError, match="C = 1 or 3"):
        plot_images(torch.zeros(2, 2, 4, 4), ["a", "b"], tmp_path / "bad.png")


def test_denormalize_inverts_the_loader_normalisation():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    assert torch.equal(denormalize(BatchTransform(mean, std)(x), mean, std), x)
    with pytest.raises(ShapeError):
        denormalize(torch.zeros(1, 3, 2, 2), (0.5,), (0.5,))


def test_top_losses_matches_a_brute_force_ranking():
    gen = torch.Generator().manual_seed(0)
    ds = ImageTensorDataset(torch.randint(0, 256, (23, 1, 6, 6), dtype=torch.uint8, generator=gen),
                            torch.randint(0, 3, (23,), generator=gen), ["a", "b", "c"])
    loader = DeviceLoader(ds, batch_size=5, mean=(0.5,), std=(0.25,))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(36, 3))
    net.train()
    worst = top_losses(net, loader, k=4)
    assert net.training  # mode restored
    x = torch.cat([b for b, _ in loader.iter_epoch(0)])
    net.eval()
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(net(x), ds.targets, reduction="none")
    expected = losses.topk(4).indices
    assert worst.positions.tolist() == expected.tolist()
    torch.testing.assert_close(worst.losses, losses[expected])
    assert torch.equal(worst.images, x[expected])
    assert torch.equal(worst.targets, ds.targets[expected])
    assert len(top_losses(net, loader, k=100)) == 23
    titles = worst.titles(["a", "b", "c"])
    assert len(titles) == 4 and titles[0].startswith("true: ")
    with pytest.raises(ConfigError):
        top_losses(net, loader, k=0)


class TinyNet(torch.nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 4).flatten(1))


@pytest.fixture
def tiny_trainer(tmp_path):
    fk.register_model("plots_tiny_net", lambda num_classes, in_channels, **kw: TinyNet(
        num_classes, in_channels))
    data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16,
                              train_size=48, test_size=24, val_fraction=0.25)
    model = fk.create_model("plots_tiny_net", num_classes=3, in_channels=1)

    def make(**options):
        settings = dict(epochs=2, batch_size=16, progress=False, device="cpu",
                        output_dir=str(tmp_path / "run"))
        settings.update(options)
        return fk.Trainer(model, data, **settings)

    yield make
    fk.models.MODELS.unregister("plots_tiny_net")


def test_plot_callback_draws_the_run_figures(tiny_trainer):
    trainer = tiny_trainer(callbacks=[PlotCallback(worst=6)])
    trainer.fit()
    plots = trainer.run_dir.root / "plots"
    assert_png(plots / "curves.png")
    assert not (plots / "confusion.png").exists()
    trainer.test(print_report=False)
    assert_png(plots / "confusion.png")
    width, height = assert_png(plots / "worst.png")
    assert width > height  # six images on one row


def test_plot_callback_without_a_run_directory(tiny_trainer, tmp_path):
    trainer = tiny_trainer(callbacks=[PlotCallback(worst=0)])
    with pytest.raises(ConfigError, match="directory="):
        trainer.test(print_report=False)
    trainer = tiny_trainer(callbacks=[PlotCallback(worst=2, directory=tmp_path / "figs")])
    trainer.test(print_report=False)
    assert_png(tmp_path / "figs" / "confusion.png")
    assert_png(tmp_path / "figs" / "worst.png", min_side=50)


def test_plot_callback_checks_its_options():
    with pytest.raises(ConfigError, match="worst"):
        PlotCallback(worst=-1)
    with pytest.raises(ConfigError, match="every_n_epochs"):
        PlotCallback(every_n_epochs=0)


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

    module = importlib.import_module("finetune_kit.plots")  # the module, even if fk exports a function
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
