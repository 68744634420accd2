"""The weights load report: one line, kept with the model (and its checkpoints), in the run dir."""

from __future__ import annotations

import torch

import finetune_kit as fk
from finetune_kit.models import LoadReport, create_model, load_weights, model_info
from finetune_kit.models.load import load_report_of
from finetune_kit.storage.checkpoint import load_checkpoint


def test_the_report_travels_with_the_model_and_reads_as_one_line(tmp_path):
    donor = create_model("lenet", num_classes=10, seed=1)
    path = tmp_path / "donor.pth"
    torch.save(donor.state_dict(), path)
    model = create_model("lenet", num_classes=4, in_channels=1, weights=path)
    report = load_report_of(model)
    assert report == load_weights(create_model("lenet", num_classes=4, in_channels=1), path)
    assert report.summary() == (
        f"weights {path}: 8 of 10 model tensors loaded; head replaced (the weights have 10 classes, the "
        "model 4); conv1.weight adapted 6x3x5x5 -> 6x1x5x5"
    )
    assert LoadReport.from_dict(report.to_dict()) == report
    assert model_info(model).load_report == report.to_dict()
    assert load_report_of(create_model("lenet", num_classes=4)) is None


def test_a_run_prints_and_keeps_the_weights_it_started_from(tmp_path, capsys):
    donor = create_model("lenet", num_classes=10, input_size=16, seed=1)
    model = create_model("lenet", num_classes=3, in_channels=1, input_size=16, weights=donor.state_dict())
    data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16, train_size=32, test_size=8)
    trainer = fk.Trainer(model, data, epochs=1, batch_size=16, output_dir=str(tmp_path / "run"))
    trainer.fit()
    line = load_report_of(model).summary()
    assert line.startswith("weights state dict: 8 of 10 model tensors loaded; head replaced")
    assert line in capsys.readouterr().err.splitlines()  # printed at the default verbosity
    root = trainer.run_dir.root
    assert line in (root / "train.log").read_text().splitlines()
    weights = (root / "weights.txt").read_text()
    assert weights.startswith(line + "\n\n") and "head skipped (fc3.weight, fc3.bias)" in weights
    stored = load_checkpoint(root / "last.ckpt")["model_info"]["load_report"]  # weights_only load
    assert LoadReport.from_dict(stored).summary() == line
