"""Per-class figures: the confusion matrix (counts and normalised) and per-class accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from finetune_kit.analysis.class_figures import per_class_accuracy, plot_confusion, plot_per_class
from finetune_kit.errors import ShapeError
from tests.analysis.test_figures import assert_png


def test_plot_confusion_draws_counts_and_shares_side_by_side(tmp_path):
    names = [f"class_{i}" for i in range(4)]
    matrix = [[5, 1, 0, 0], [2, 7, 1, 0], [0, 0, 9, 1], [0, 0, 0, 0]]  # an empty row is fine
    width, height = assert_png(plot_confusion(matrix, names, tmp_path / "c.png"))
    assert width > 1.8 * height  # two square panels
    assert_png(plot_confusion(torch.tensor(matrix), names, tmp_path / "t.png"))
    with pytest.raises(ShapeError, match="4 class names"):
        plot_confusion([[1, 2], [3, 4]], names, tmp_path / "x.png")
    with pytest.raises(ShapeError, match="square"):
        plot_confusion([[1, 2, 3]], ["a"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_per_class_accuracy_is_the_recall_of_each_class(tmp_path):
    matrix = [[8, 2, 0], [1, 3, 0], [0, 0, 0]]
    accuracy = per_class_accuracy(matrix).tolist()
    assert accuracy[:2] == [0.8, 0.75] and math.isnan(accuracy[2])
    assert_png(plot_per_class(matrix, ["a", "b", "c"], tmp_path / "p.png"))
    with pytest.raises(ShapeError, match="class names"):
        plot_per_class(matrix, ["a"], tmp_path / "bad.png")
