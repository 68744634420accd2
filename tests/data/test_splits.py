"""Stratified, seeded, disjoint validation splits and the split file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_kit.data.splits import load_split, save_split, split_fingerprint, stratified_split
from finetune_kit.errors import ConfigError, DataError


def test_stratified_exact_on_balanced_classes() -> None:
    targets = torch.arange(1000) % 10
    train, val = stratified_split(targets, 0.1, seed=0)
    assert len(val) == 100 and len(train) == 900
    assert targets[val].bincount(minlength=10).tolist() == [10] * 10


def test_disjoint_cover_sorted() -> None:
    targets = torch.randint(0, 5, (333,), generator=torch.Generator().manual_seed(1))
    train, val = stratified_split(targets, 0.2, seed=3)
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(333))
    assert torch.equal(train, torch.sort(train).values) and torch.equal(val, torch.sort(val).values)


def test_deterministic_and_seed_dependent() -> None:
    targets = torch.arange(500) % 7
    a = stratified_split(targets, 0.15, seed=11)
    b = stratified_split(targets, 0.15, seed=11)
    c = stratified_split(targets, 0.15, seed=12)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_independent_of_global_rng() -> None:
    targets = torch.arange(100) % 4
    torch.manual_seed(0)
    a = stratified_split(targets, 0.3, seed=5)
    torch.manual_seed(99)
    b = stratified_split(targets, 0.3, seed=5)
    assert torch.equal(a[1], b[1])


def test_zero_fraction() -> None:
    train, val = stratified_split(torch.arange(10) % 2, 0, seed=0)
    assert train.tolist() == list(range(10)) and val.numel() == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, "0.1"])
def test_bad_fraction(fraction) -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_split(torch.arange(10) % 2, fraction, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    fraction=st.floats(0.01, 0.9),
    seed=st.integers(0, 2**31),
)
def test_property_stratified(counts: list[int], fraction: float, seed: int) -> None:
    targets = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    targets = targets[torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))]
    train, val = stratified_split(targets, fraction, seed=seed)
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert len(train) + len(val) == len(targets)
    per_class = targets[val].bincount(minlength=len(counts)).tolist()
    for k, c in enumerate(counts):
        assert abs(per_class[k] - c * fraction) < 1 + 1e-9 or per_class[k] == c - 1
        assert per_class[k] <= max(c - 1, 0)  # every class keeps a training image
    assert abs(len(val) - len(targets) * fraction) <= len(counts) + 1


def record(train, val, **overrides) -> dict:
    base = {
        "dataset": "demo",
        "seed": 0,
        "val_fraction": 0.2,
        "n_train_total": 10,
        "fingerprint": "abc",
        "train_indices": train,
        "val_indices": val,
    }
    return {**base, **overrides}


def test_split_file_roundtrip(tmp_path: Path) -> None:
    path = save_split(tmp_path / "run" / "split.json", record(list(range(8)), [8, 9]))
    train, val, rec = load_split(path, dataset="demo", n_train_total=10, fingerprint="abc")
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9] and rec["format"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "other"}, r"other data \(dataset is"),
        ({"n_train_total": 11}, r"other data \(n_train_total is"),
        ({"fingerprint": "xyz"}, r"other data \(fingerprint is"),
    ],
)
def test_split_file_for_another_dataset(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = save_split(tmp_path / "s.json", record(list(range(8)), [8, 9]))
    expected = {"dataset": "demo", "n_train_total": 10, "fingerprint": "abc", **kwargs}
    with pytest.raises(DataError, match=message):
        load_split(path, **expected)


@pytest.mark.parametrize(
    ("train", "val", "message"),
    [
        ([0, 1, 2], [2], "repeats an index"),
        ([0, 1, 10], [3], "outside"),
        ([0, "1"], [3], "list of integers"),
    ],
)
def test_split_file_bad_indices(tmp_path: Path, train, val, message: str) -> None:
    path = save_split(tmp_path / "s.json", record(train, val))
    with pytest.raises(DataError, match=message):
        load_split(path, dataset="demo", n_train_total=10, fingerprint="abc")


def test_split_file_not_json(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(DataError, match="Cannot read split file"):
        load_split(tmp_path / "s.json", dataset="demo", n_train_total=10, fingerprint="abc")
    (tmp_path / "s.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="JSON object"):
        load_split(tmp_path / "s.json", dataset="demo", n_train_total=10, fingerprint="abc")


def test_fingerprint_depends_on_labels() -> None:
    assert split_fingerprint(torch.tensor([0, 1])) != split_fingerprint(torch.tensor([1, 0]))
    assert split_fingerprint(torch.tensor([0, 1])) == split_fingerprint(
        torch.tensor([0, 1], dtype=torch.uint8)
    )
