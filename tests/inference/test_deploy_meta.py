"""DeployMeta: written and read back; every entry of a file is checked as untrusted input."""

from __future__ import annotations

import json

import pytest

from finetune_kit import __version__
from finetune_kit.errors import CheckpointError
from finetune_kit.inference.deploy_meta import DeployMeta

META = {
    "class_names": ["cat", "dog", "frog"],
    "in_channels": 3,
    "image_size": [32, 32],
    "input_size": [224, 224],
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def properties(**changes):
    props = DeployMeta.from_data_meta(META, "run").to_properties()
    for key, value in changes.items():
        if value is None:
            del props[key]
        else:
            props[key] = value if isinstance(value, str) else json.dumps(value)
    return props


def test_round_trip_keeps_every_field():
    meta = DeployMeta.from_data_meta(
        META,
        "run",
        input_format="uint8",
        outputs=["logits", "probabilities"],
        model_name="resnet18",
        source="runs/x/last.ckpt",
        weights="ema",
    )
    props = meta.to_properties()
    assert all(isinstance(v, str) for v in props.values())
    assert json.loads(props["class_names"]) == META["class_names"]
    assert json.loads(props["std"]) == META["std"]
    back = DeployMeta.from_properties(props, "m.onnx")
    assert back == meta and back.finetune_kit_version == __version__
    assert back.data_meta() == META and back.num_classes == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": [f"c{i}" for i in range(100_001)]}, "class_names"),
        ({"class_names": []}, "class_names"),
        ({"class_names": ["a", 2]}, "class_names"),
        ({"std": [0.2, 0.0, 0.2]}, r"'std' must be a list of 3 finite numbers > 0"),
        ({"std": [0.2, -1.0, 0.2]}, "'std'"),
        ({"std": "[0.2, NaN, 0.2]"}, "'std'"),
        ({"mean": [0.5]}, r"'mean' must be a list of 3"),
        ({"mean": [0.5, "x", 0.5]}, "'mean'"),
        ({"in_channels": 0}, "'in_channels' must be an integer from 1 to 64"),
        ({"in_channels": True}, "'in_channels'"),
        ({"in_channels": 10**12}, "'in_channels'"),
        ({"image_size": [32]}, "'image_size'"),
        ({"image_size": [32, 10**9]}, "'image_size'"),
        ({"input_size": [224.5, 224]}, "'input_size'"),
        ({"input_format": "float16"}, "'input_format'"),
        ({"outputs": ["probabilities"]}, "'outputs'"),
        ({"weights": "best"}, "'weights'"),
        ({"source": {"a": 1}}, "'source'"),
        ({"class_names": "{not json"}, "valid JSON"),
        ({"class_names": "[" * 100_000}, "valid JSON"),
        ({"class_names": " " * 9_000_000}, "at most"),
        ({"mean": None}, r"lacks \['mean'\]"),
        ({"finetune_kit_format": None}, "has no finetune_kit metadata"),
        ({"finetune_kit_format": "other"}, "has no finetune_kit metadata"),
        ({"finetune_kit_format_version": "2"}, "newer finetune_kit"),
        ({"finetune_kit_format_version": "1.0"}, "expected an integer"),
    ],
)
def test_malformed_entries_are_refused_with_the_entry_named(changes, message):
    with pytest.raises(CheckpointError, match=message) as info:
        DeployMeta.from_properties(properties(**changes), "model.onnx")
    text = str(info.value)
    assert text.startswith("model.onnx") and len(text) < 400 and "\n" not in text


def test_data_meta_from_a_checkpoint_is_checked_too():
    with pytest.raises(CheckpointError, match=r"run: the data metadata lacks \['std'\]"):
        DeployMeta.from_data_meta({k: v for k, v in META.items() if k != "std"}, "run")
    with pytest.raises(CheckpointError, match="'std'"):
        DeployMeta.from_data_meta({**META, "std": [1.0, 1.0, 0.0]}, "run")
