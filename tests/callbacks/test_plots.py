"""PlotCallback: the run's figures land in the run directory (or a given one)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import finetune_kit as fk
from finetune_kit.analysis.figures import PNG_SIGNATURE
from finetune_kit.callbacks.plots import PlotCallback
from finetune_kit.errors import ConfigError


def assert_png(path, min_side=100):
    """A real PNG of a sensible size; returns (width, height)."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert min_side <= width <= 5000 and min_side <= height <= 5000
    return width, height


class TinyNet(torch.nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 4).flatten(1))


@pytest.fixture
def tiny_trainer(tmp_path):
    fk.register_model(
        "plots_tiny_net", lambda num_classes, in_channels, **kw: TinyNet(num_classes, in_channels)
    )
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=24, val_fraction=0.25
    )
    model = fk.create_model("plots_tiny_net", num_classes=3, in_channels=1)

    def make(**options):
        settings = dict(
            epochs=2, batch_size=16, progress=False, device="cpu", output_dir=str(tmp_path / "run")
        )
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
    width, height = assert_png(plots / "confusion.png")
    assert width > 1.8 * height  # counts and normalised, side by side
    assert_png(plots / "per_class.png")
    width, height = assert_png(plots / "worst.png")
    assert width > height  # six images on one row


def test_the_default_config_leaves_png_plots(tiny_trainer, default_plots):
    trainer = tiny_trainer(verbosity=0)  # train.plots unset: on, as matplotlib is installed
    trainer.fit()
    trainer.test(print_report=False)
    plots = trainer.run_dir.root / "plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "confusion.png",
        "curves.png",
        "per_class.png",
        "worst.png",
    ]
    for path in plots.iterdir():
        assert_png(path, min_side=50)
    off = tiny_trainer(verbosity=0, plots=False, output_dir=str(trainer.run_dir.root) + "-off")
    off.fit()
    off.test(print_report=False)
    assert not (off.run_dir.root / "plots").exists()


class CurvesSeen(fk.Callback):
    """Whether curves.png exists when each epoch ends (after PlotCallback ran)."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer):
        self.seen.append((trainer.run_dir.root / "plots" / "curves.png").exists())


@pytest.mark.parametrize(("min_interval", "seen"), [(0.0, [True, True]), (3600.0, [False, False])])
def test_curves_are_redrawn_at_most_every_min_interval(tiny_trainer, min_interval, seen):
    probe = CurvesSeen()
    trainer = tiny_trainer(callbacks=[PlotCallback(min_interval=min_interval, worst=0), probe], verbosity=0)
    trainer.fit()
    assert probe.seen == seen
    assert_png(trainer.run_dir.root / "plots" / "curves.png")  # always drawn when fit ends


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
    with pytest.raises(ConfigError, match="min_interval"):
        PlotCallback(min_interval=-1)
