"""check_parity: an artifact that does not reproduce its model is caught, and nothing is written."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import finetune_kit as fk
from finetune_kit.errors import ExportError
from finetune_kit.inference.parity import NOISE_FACTOR, Parity, float32_noise

META = {
    "class_names": ["a", "b"],
    "in_channels": 1,
    "image_size": [4, 4],
    "input_size": [4, 4],
    "mean": [0.5],
    "std": [0.25],
}


class ExportsSomethingElse(nn.Module):
    """Eager PyTorch and the exported graph compute different things (a tracing pitfall)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return logits + 0.01 if torch.compiler.is_exporting() else logits


@pytest.mark.parametrize("format", ["onnx", "torch_export"])
def test_an_artifact_that_differs_is_refused_and_not_written(tmp_path, format):
    target = tmp_path / ("m.onnx" if format == "onnx" else "m.pt2")
    with pytest.raises(
        ExportError, match=r"does not reproduce the PyTorch model: their outputs differ by up to 1\.00e-02"
    ):
        fk.export(ExportsSomethingElse(), target, format=format, meta=META)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    # the check can be relaxed or skipped on purpose
    assert fk.export(ExportsSomethingElse(), target, format=format, meta=META, tolerance=0.02) == target
    fk.export(ExportsSomethingElse(), target, format=format, meta=META, check=False, overwrite=True)


def test_a_model_that_cannot_be_traced_is_one_clear_error(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :2] if x.sum() > 0 else -x.flatten(1)[:, :2]

    with pytest.raises(ExportError, match="torch.export cannot trace this DataDependent"):
        fk.export(DataDependent(), tmp_path / "m.onnx", format="onnx", meta=META)
    assert list(tmp_path.iterdir()) == []


def test_the_float32_noise_of_the_model_widens_the_tolerance():
    assert Parity(5e-5).accepted(1e-4)
    assert not Parity(3e-4).accepted(1e-4)
    assert Parity(3e-4, 1e-4).accepted(1e-4)  # within NOISE_FACTOR x the model's own rounding
    assert not Parity(NOISE_FACTOR * 1e-4 + 1e-6, 1e-4).accepted(1e-4)
    assert not Parity(float("nan"), 1e-4).accepted(1e-4)
    assert "itself is 1.0e-04 from float64" in Parity(3e-4, 1e-4).noise_note()


def test_float32_noise_measures_the_models_own_rounding():
    net = nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)]).eval()
    noise = float32_noise(net, torch.randn(8, 64))
    assert 0 < noise < 1e-4
