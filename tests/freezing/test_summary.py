"""The trainable summary: table layout, totals, JSON values and the files it writes."""

from __future__ import annotations

import json

from finetune_kit.freezing.summary import StageRow, TrainableSummary

ROWS = (
    StageRow("stem", 1200, 0, "eval", ()),
    StageRow("layer1", 34000, 34000, "follows model", (0.25, 0.5)),
    StageRow("head", 10, 10, "-", (1.0,)),
)


def test_lr_text_of_frozen_single_and_ranged_multipliers():
    assert [r.lr_text for r in ROWS] == ["-", "0.25-0.5", "1"]


def test_table_is_aligned_with_a_total_row():
    summary = TrainableSummary("discriminative_lr(decay=0.5)", "eval", ROWS)
    assert summary.total_params == 35210 and summary.trainable_params == 34010
    lines = summary.table().splitlines()
    assert lines[0] == "strategy: discriminative_lr(decay=0.5)   BatchNorm policy of frozen layers: eval"
    assert lines[1:] == [
        "stage   params  trainable  BatchNorm      lr mult",
        "stem     1,200          0  eval           -",
        "layer1  34,000     34,000  follows model  0.25-0.5",
        "head        10         10  -              1",
        "total   35,210     34,010",
    ]
    assert str(summary) == summary.table()


def test_to_dict_and_save_write_the_same_values(tmp_path):
    summary = TrainableSummary("full()", "train", ROWS)
    data = summary.to_dict()
    assert data["strategy"] == "full()" and data["bn_policy"] == "train"
    assert data["stages"][1] == {
        "stage": "layer1",
        "params": 34000,
        "trainable": 34000,
        "batchnorm": "follows model",
        "lr_mult": [0.25, 0.5],
    }
    text, js = summary.save(tmp_path)
    assert (text.name, js.name) == ("trainable.txt", "trainable.json")
    assert text.read_text(encoding="utf-8") == summary.table() + "\n"
    assert json.loads(js.read_text(encoding="utf-8")) == data


def test_an_empty_summary_has_zero_totals():
    summary = TrainableSummary("full()", "eval")
    assert summary.rows == () and summary.total_params == 0
    assert summary.table().splitlines()[-1].split() == ["total", "0", "0"]
