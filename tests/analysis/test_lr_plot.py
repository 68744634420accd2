"""The lr finder's figure: the divergent tail is cut, the suggestion marked, a log lr axis."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from finetune_kit.analysis.lr_plot import plot_lr_find, visible_steps
from finetune_kit.errors import ConfigError, ShapeError
from tests.analysis.test_figures import assert_png


def test_the_tail_after_the_loss_climbs_back_above_its_start_is_not_drawn():
    assert visible_steps([2.3, 2.0, 1.0, 0.8, 1.5, 2.2, 2.4, 50.0, 800.0]) == 6
    assert visible_steps([2.3, 2.0, 1.0]) == 3  # never diverged: everything is drawn
    assert visible_steps([2.3, float("nan")]) == 1
    assert visible_steps([]) == 0


def _red_dots(path):
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    red = (pixels[..., 0] > 190) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    return int(red.sum())


def test_plot_marks_the_suggestion_and_drops_the_divergent_tail(tmp_path):
    lrs = list(np.geomspace(1e-6, 10, 60))
    losses = [2.3 - 1.5 / (1 + np.exp(-(np.log10(lr) + 3) * 3)) for lr in lrs]  # falls around 1e-3
    losses[-5:] = [3.0, 10.0, 100.0, 400.0, 800.0]  # the blow-up at the end
    with_dot = plot_lr_find(lrs, losses, tmp_path / "lr.png", suggestion=lrs[25], steepest=lrs[30])
    assert_png(with_dot)
    assert _red_dots(with_dot) > 20  # the red suggestion marker
    assert _red_dots(plot_lr_find(lrs, losses, tmp_path / "plain.png")) == 0
    with pytest.raises(ShapeError):
        plot_lr_find(lrs, losses[:-1], tmp_path / "bad.png")
    with pytest.raises(ConfigError):
        plot_lr_find([0.0, 1.0], [1.0, 1.0], tmp_path / "bad.png")
