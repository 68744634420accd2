"""The lines of the plain-text log: one epoch line, the weights line, the report line."""

from __future__ import annotations

from types import SimpleNamespace

import finetune_kit as fk
from finetune_kit.callbacks.run_log import epoch_line, report_line, weights_line


def test_epoch_line_shows_what_the_row_has():
    row = {
        "epoch": 3,
        "train_loss": 0.5,
        "train_accuracy": 0.8,
        "val_loss": 0.6,
        "val_accuracy": 0.75,
        "lr": 0.01,
        "lr_stem": 0.000625,
        "lr_head": 0.01,
        "epoch_time": 61.234,
        "images_per_s": 12345.6,
    }
    assert epoch_line(row, epochs=10) == (
        "epoch 3/10  train loss 0.5000 acc 0.8000  val loss 0.6000 acc 0.7500  lr 0.000625..0.01  "
        "61.2s  12,346 img/s"
    )
    assert epoch_line({"epoch": 1, "train_loss": 2.0}, epochs=1) == "epoch 1/1  train loss 2.0000"


def test_weights_line_names_the_source_the_head_and_the_stem():
    donor = fk.create_model("resnet18", num_classes=10, seed=1)
    model = fk.create_model(
        "resnet18", num_classes=4, in_channels=1, small_input=True, weights=donor.state_dict()
    )
    assert weights_line(model) == (
        "weights state dict: 120 of 122 model tensors loaded; head replaced (the weights have 10 "
        "classes, the model 4); conv1.weight adapted 64x3x7x7 -> 64x1x3x3"
    )
    assert weights_line(fk.create_model("lenet", num_classes=2)) == "weights: none (random initialisation)"


def test_report_line():
    assert report_line(SimpleNamespace(support=10000, loss=0.25, accuracy=0.91)) == (
        "test: 10,000 images, loss 0.2500, accuracy 0.9100"
    )
