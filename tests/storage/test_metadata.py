"""The checks of metadata read from files: a good description passes, each kind of lie is named."""

from __future__ import annotations

import copy

import pytest

import finetune_kit as fk
from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.storage.metadata import (
    check_data_meta,
    check_freezing,
    check_model_info,
    check_position,
    check_stored_model,
)


@pytest.fixture(scope="module")
def described():
    data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16, train_size=16, test_size=4)
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    return fk.model_info(model).to_dict(), data.meta()


def test_real_descriptions_pass_unchanged(described):
    info, meta = described
    assert check_model_info(info, "x") == info and check_data_meta(meta, "x") == meta
    check_stored_model(info, meta, "x")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("num_classes", 0, "num_classes must be an integer in [1, 1000000]"),
        ("num_classes", 3.0, "got 3.0"),
        ("std", [0.0], "std[0] must be a finite number > 0"),
        ("std", [float("inf")], "std[0] must be a finite number > 0"),
        ("mean", [0.1, 0.2], "mean must be a list of 1 numbers"),
        ("image_size", [16, 0], "image_size[1] must be an integer in [1, 8192]"),
        ("class_names", ["a", "b"], "class_names must be a list of 3 names (one per class), got 2"),
        ("class_names", [b"a", "b", "c"], "class_names[0] must be a text"),
        ("dataset_std", "x", "dataset_std must be a list of one number per channel"),
        ("extra", object(), "extra must be plain data"),
    ],
)
def test_data_meta_lies_are_named(described, key, value, words):
    meta = dict(copy.deepcopy(described[1]), **{key: value})
    with pytest.raises(CheckpointError) as info:
        check_data_meta(meta, "model.json", fix="Export again.")
    assert str(info.value).startswith(f"model.json: data_meta.{key}") and words in str(info.value)
    assert str(info.value).endswith("Export again.")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda i: i.update(evil=1), "unknown fields ['evil']"),
        (lambda i: i.pop("stages"), "has no stages"),
        (lambda i: i.update(head=None), "head must be a text"),
        (lambda i: i.update(stages=[["head"]]), "stages[0] must be a pair"),
        (lambda i: i["build_kwargs"].update(weights="imagenet"), "build_kwargs.weights must be absent"),
        (lambda i: i["build_kwargs"].update(in_channels=3), "build_kwargs.in_channels must be 1"),
        (lambda i: i["build_kwargs"].update(seed=2**64), "build_kwargs.seed must be an integer in [0, "),
        (lambda i: i["build_kwargs"].update(input_size=[16, 10**5]), "build_kwargs.input_size[1]"),
        (lambda i: i["build_kwargs"].update(hook=lambda: 0), "build_kwargs.hook must be plain data"),
        (lambda i: i.update(load_report={"evil": []}), "load_report must be a weights load report"),
        (lambda i: i.update(load_report={"loaded": "w"}), "load_report.loaded must be a list"),
        (
            lambda i: i.update(load_report={"shapes": {"w": [[2], "x"]}}),
            "load_report.shapes.w must be a pair",
        ),
    ],
)
def test_model_info_lies_are_named(described, edit, words):
    info = copy.deepcopy(described[0])
    edit(info)
    with pytest.raises(CheckpointError, match="last.ckpt: model_info") as caught:
        check_model_info(info, "last.ckpt")
    assert words in str(caught.value)


def test_a_load_report_round_trips(described):
    from finetune_kit.models.load import LoadReport

    report = LoadReport(
        loaded=("w",), skipped_head=("fc.weight",), source="x.pth", shapes={"fc.weight": ((10, 4), (3, 4))}
    )
    info = dict(copy.deepcopy(described[0]), load_report=report.to_dict())
    assert LoadReport.from_dict(check_model_info(info, "last.ckpt")["load_report"]) == report


def test_a_partial_description_checks_only_what_it_has():
    assert check_model_info({"mean": [0.5], "std": [0.2]}, "w.pth", complete=False)
    with pytest.raises(ConfigError, match="w.pth: weights.std"):
        check_model_info({"std": [0]}, "w.pth", complete=False, error=ConfigError, entry="weights")


def test_model_and_data_must_agree(described):
    info = dict(described[0], num_classes=4)
    with pytest.raises(CheckpointError, match="model_info.num_classes is 4 but data_meta.num_classes is 3"):
        check_stored_model(info, described[1], "model.json")


def test_freezing_and_position_entries():
    good = {"strategy": "lora", "options": {"rank": 4}, "bn_policy": "eval", "level": 0, "trainable": ["a"]}
    assert check_freezing(good, "c") == good
    for bad, words in (
        ({"options": {"rank": float("nan")}}, "freezing.options.rank must be a finite number"),
        ({"trainable": [1]}, "freezing.trainable[0] must be a text"),
        ({"strategy": ""}, "freezing.strategy must be a non-empty text"),
    ):
        with pytest.raises(CheckpointError, match="c: freezing") as info:
            check_freezing(bad, "c")
        assert words in str(info.value)
    assert check_position({"epoch": 1, "batch": 0, "global_step": 9, "stage": "head"}, "c")["epoch"] == 1
    with pytest.raises(CheckpointError, match="position.batch must be an integer"):
        check_position({"batch": True}, "c")
