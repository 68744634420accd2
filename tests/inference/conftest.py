"""A small trained run and its deployment artifacts, shared by the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import finetune_kit as fk
from finetune_kit.inference import export
from tests.inference.brightness import brightness_data


@pytest.fixture(scope="session")
def deploy_run(tmp_path_factory):
    """A lenet trained for two epochs on 16x16 gray images of three brightness classes."""
    root = tmp_path_factory.mktemp("deploy_run")
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    trainer = fk.Trainer(
        model,
        brightness_data(),
        epochs=2,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        progress=False,
        device="cpu",
        output_dir=str(root / "run"),
    )
    trainer.fit()
    trainer.model.eval()
    return trainer


@pytest.fixture(scope="session")
def artifacts(deploy_run, tmp_path_factory) -> dict[str, Path]:
    """The run exported once in every format, and once more as a uint8 graph with probabilities."""
    out = tmp_path_factory.mktemp("artifacts")
    folder = export(deploy_run.run_dir.root, out / "all", format="all")
    uint8 = export(
        deploy_run.run_dir.root,
        out / "uint8.onnx",
        format="onnx",
        with_preprocessing=True,
        probabilities=True,
    )
    return {
        "dir": folder,
        "onnx": folder / "model.onnx",
        "pt2": folder / "model.pt2",
        "uint8_onnx": uint8,
    }
