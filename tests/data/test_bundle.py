"""DataBundle.meta / save_split / save_class_index and check_compatible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune_kit.data import check_compatible, create_datasets, eval_transform_from_meta
from finetune_kit.errors import ShapeError


@pytest.fixture(scope="module")
def bundle():
    return create_datasets("fake", train_size=40, test_size=8, in_channels=1, image_size=12, seed=2)


def test_meta_is_json_safe_and_complete(bundle) -> None:
    meta = json.loads(json.dumps(bundle.meta()))
    for key in (
        "name",
        "num_classes",
        "in_channels",
        "image_size",
        "input_size",
        "class_names",
        "mean",
        "std",
        "preset",
    ):
        assert key in meta
    assert meta["image_size"] == [12, 12] and meta["in_channels"] == 1 and meta["name"] == "fake"


def test_meta_rebuilds_eval_preprocessing(bundle) -> None:
    from finetune_kit.data import make_loaders

    test = make_loaders(bundle, batch_size=8).test
    x, _ = next(test.iter_epoch(0))
    rebuilt = eval_transform_from_meta(bundle.meta())(bundle.test.images)
    assert torch.equal(x, rebuilt)


def test_save_split_contents(bundle, tmp_path: Path) -> None:
    record = json.loads(bundle.save_split(tmp_path / "split.json").read_text())
    assert record["dataset"] == "fake" and record["seed"] == 2 and record["val_fraction"] == 0.1
    assert record["n_train_total"] == 40 and len(record["val_indices"]) == 4
    assert sorted(record["train_indices"] + record["val_indices"]) == list(range(40))


def test_check_compatible(bundle) -> None:
    check_compatible(bundle, in_channels=1, num_classes=10)
    with pytest.raises(ShapeError, match=r"in_channels=1\).*channels=3\)"):
        check_compatible(bundle, in_channels=3, num_classes=10)
    with pytest.raises(ShapeError, match="num_classes=10"):
        check_compatible(bundle.meta(), in_channels=1, num_classes=5)
