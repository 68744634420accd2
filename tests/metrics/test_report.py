"""The classification report: numbers against a brute-force reference, text layout, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_kit.errors import ConfigError, DataError, ShapeError
from finetune_kit.metrics.report import (
    ClassificationReport,
    average_scores,
    classification_report,
    per_class_scores,
)

SETTINGS = settings(max_examples=60, deadline=None)


def brute_force(y_true, y_pred, c):
    rows = []
    for k in range(c):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == k and p == k)
        predicted = sum(1 for p in y_pred if p == k)
        support = sum(1 for t in y_true if t == k)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, support))
    return rows


@st.composite
def labels(draw):
    c = draw(st.integers(1, 9))
    n = draw(st.integers(0, 50))
    y_true = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.integers(0, max(0, c - 2)), min_size=n, max_size=n))  # last unused
    return c, y_true, y_pred


@SETTINGS
@given(labels())
def test_report_numbers_match_the_brute_force_reference(case):
    c, y_true, y_pred = case
    report = ClassificationReport.from_predictions(y_true, y_pred, num_classes=c)
    rows = brute_force(y_true, y_pred, c)
    n = len(y_true)
    for got, (p, r, f, s) in zip(report.per_class, rows, strict=True):
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (p, r, f, s), abs=1e-12
        )
    arr = np.array(rows)
    assert report.accuracy == pytest.approx(
        sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / n if n else 0.0
    )
    for i, key in enumerate(("precision", "recall", "f1")):
        assert report.macro[key] == pytest.approx(arr[:, i].mean(), abs=1e-12)
        weighted = (arr[:, i] * arr[:, 3]).sum() / n if n else 0.0
        assert report.weighted[key] == pytest.approx(weighted, abs=1e-12)
        assert report.micro[key] == pytest.approx(report.accuracy, abs=1e-12)
    assert report.support == n
    assert json.loads(report.to_json())["confusion"] == report.confusion


def test_text_has_the_sklearn_layout_plus_micro_avg():
    # y_true = [0, 0, 1, 1, 2], y_pred = [0, 1, 1, 1, 0]
    report = ClassificationReport.from_predictions(
        [0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 3, class_names=["ant", "bee", "cicada"]
    )
    expected = "\n".join(
        [
            "              precision    recall  f1-score   support",
            "",
            "         ant     0.5000    0.5000    0.5000         2",
            "         bee     0.6667    1.0000    0.8000         2",
            "      cicada     0.0000    0.0000    0.0000         1",
            "",
            "    accuracy                         0.6000         5",
            "   macro avg     0.3889    0.5000    0.4333         5",
            "weighted avg     0.4667    0.6000    0.5200         5",
            "   micro avg     0.6000    0.6000    0.6000         5",
        ]
    )
    assert report.text() == expected
    assert str(report) == expected


def test_long_class_names_widen_the_first_column():
    names = ["a_very_long_class_name", "b"]
    report = classification_report(np.eye(2, dtype=int), class_names=names)
    first = report.text(digits=2).splitlines()[2]
    assert first.startswith("a_very_long_class_name ")
    assert first.endswith("1.00         1")


def test_to_dict_is_json_ready_and_complete():
    report = classification_report(torch.tensor([[3, 1], [0, 2]]), class_names=["x", "y"])
    report.loss = 0.125  # the Trainer attaches the mean loss
    data = json.loads(report.to_json())
    assert set(data) == {
        "accuracy",
        "loss",
        "support",
        "class_names",
        "per_class",
        "macro",
        "weighted",
        "micro",
        "confusion",
    }
    assert data["confusion"] == [[3, 1], [0, 2]]
    assert data["per_class"][0] == {
        "name": "x",
        "precision": 1.0,
        "recall": 0.75,
        "f1": pytest.approx(6 / 7),
        "support": 4,
    }
    assert data["loss"] == 0.125 and data["accuracy"] == pytest.approx(5 / 6)
    report.loss = float("nan")
    assert json.loads(report.to_json())["loss"] is None


def test_confusion_from_tensor_numpy_and_lists_agree():
    cm = [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    reports = [classification_report(v) for v in (cm, np.array(cm), torch.tensor(cm))]
    assert all(r.to_dict() == reports[0].to_dict() for r in reports)
    assert reports[0].class_names == ["0", "1", "2"]


def test_empty_confusion_gives_zeros():
    report = classification_report(np.zeros((3, 3), dtype=int))
    assert report.accuracy == 0.0
    assert report.macro == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report.weighted["f1"] == 0.0


def test_average_scores_and_per_class_scores_helpers():
    scores = per_class_scores(np.array([[3, 1], [0, 0]]))
    assert average_scores(scores, "recall", "none") == [0.75, 0.0]
    assert average_scores(scores, "precision", "weighted") == 1.0
    with pytest.raises(ConfigError, match="average"):
        average_scores(scores, "f1", "binary")
    with pytest.raises(ConfigError, match="metric"):
        average_scores(scores, "accuracy", "macro")


def test_bad_inputs():
    with pytest.raises(ShapeError, match="square"):
        classification_report(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="non-negative whole counts"):
        classification_report([[1, -1], [0, 1]])
    with pytest.raises(ConfigError, match="non-negative whole counts"):
        classification_report([[1.5, 0], [0, 1]])
    with pytest.raises(ConfigError, match="2 names for 3 classes"):
        classification_report(np.eye(3, dtype=int), class_names=["a", "b"])
    with pytest.raises(ShapeError, match="equal length"):
        ClassificationReport.from_predictions([0, 1], [0], num_classes=2)
    with pytest.raises(DataError, match="y_pred"):
        ClassificationReport.from_predictions([0, 1], [0, 2], num_classes=2)
