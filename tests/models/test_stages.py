"""Stages of a model: built-in ModelInfo stages, the fallback for user models, stage_of."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models import create_model
from finetune_kit.models.stages import Stage, model_stages, stage_of


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.block1 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6))
        self.block2 = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.block2(torch.relu(self.block1(torch.relu(self.stem(x))))))
        return self.fc(x.mean(dim=(2, 3)))


def test_model_stages_of_built_in_models():
    resnet = create_model("resnet18", num_classes=3, in_channels=1, small_input=True)
    stages = model_stages(resnet)
    assert [s.name for s in stages] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [s.name for s in model_stages(create_model("convnet", num_classes=3))] == [
        "conv1",
        "conv2",
        "fc1",
        "head",
    ]
    every = [n for s in stages for n in s.params]
    assert sorted(every) == sorted(n for n, _ in resnet.named_parameters())
    assert stages[-1].modules == (resnet.fc,)


def test_model_stages_fallback_for_user_models():
    model = TinyNet()
    model.register_parameter("scale", nn.Parameter(torch.ones(1)))
    stages = model_stages(model)
    assert [s.name for s in stages] == ["root", "stem", "block1", "block2", "head"]
    assert list(stages[0].params) == ["scale"] and stages[-1].module_names == ("fc",)
    assert [s.name for s in model_stages(nn.Linear(2, 2))] == ["head"]


def test_model_stages_reject_an_info_that_leaves_parameters_out():
    model = create_model("convnet", num_classes=3)
    model.extra = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match=r"leave out parameters.*extra.weight"):
        model_stages(model)


def test_children_without_parameters_join_the_stage_before_them():
    model = nn.Sequential(
        nn.ReLU(), nn.Linear(2, 3), nn.ReLU(), nn.BatchNorm1d(3, affine=False), nn.Linear(3, 1)
    )
    stages = model_stages(model)
    assert [(s.name, s.module_names) for s in stages] == [("1", ("0", "1", "2", "3")), ("head", ("4",))]
    assert all(isinstance(s, Stage) for s in stages)
    assert stages[0].num_params == 9 and stages[1].num_params == 4


def test_stage_of_takes_the_longest_prefix():
    model = TinyNet()
    stages = model_stages(model)
    names = [s.name for s in stages]
    assert names[stage_of("block1.0.weight", stages)] == "block1"
    assert names[stage_of("block1", stages)] == "block1"
    assert names[stage_of("fc.bias", stages)] == "head"
    assert stage_of("block10.weight", stages) == -1  # a prefix must end at a dot
    root = model_stages(nn.Linear(2, 2))  # one stage over the whole model (module name "")
    assert stage_of("anything", root) == 0
