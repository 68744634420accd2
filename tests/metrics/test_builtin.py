"""Streaming metrics against a brute-force NumPy reference (loops over samples)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_kit.errors import ConfigError, DataError, ShapeError, UnknownNameError
from finetune_kit.metrics import METRICS, Metrics, create_metric, list_metrics, register_metric
from finetune_kit.metrics.base import Metric
from finetune_kit.metrics.builtin import Accuracy

SETTINGS = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- reference
def reference(preds, targets, num_classes):
    """Per-class counts by looping over samples, then the documented conventions."""
    tp, fp, fn, support = (np.zeros(num_classes) for _ in range(4))
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(preds, targets, strict=True):
        confusion[t, p] += 1
        support[t] += 1
        if p == t:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    precision = [tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] > 0 else 0.0 for c in range(num_classes)]
    recall = [tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] > 0 else 0.0 for c in range(num_classes)]
    f1 = [2 * p * r / (p + r) if p + r > 0 else 0.0 for p, r in zip(precision, recall, strict=True)]
    n = len(targets)
    out = {"accuracy": float(tp.sum() / n) if n else 0.0, "confusion_matrix": confusion.tolist()}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        per_class = np.array(per_class)
        out[f"{name}/none"] = per_class.tolist()
        out[f"{name}/macro"] = float(per_class.mean())
        out[f"{name}/weighted"] = float((per_class * support).sum() / n) if n else 0.0
        out[f"{name}/micro"] = out["accuracy"]  # single-label: pooled p = r = f1 = accuracy
    return out


def all_metrics(num_classes):
    ms = {"accuracy": "accuracy", "confusion_matrix": "confusion_matrix"}
    for name in ("precision", "recall", "f1"):
        for average in ("none", "macro", "weighted", "micro"):
            ms[f"{name}/{average}"] = create_metric(name, num_classes=num_classes, average=average)
    return Metrics(ms, num_classes=num_classes)


@st.composite
def predictions(draw, max_classes=12, max_n=60):
    """Targets and predictions (as logits or as classes), cut into random batches."""
    c = draw(st.integers(1, max_classes))
    n = draw(st.integers(0, max_n))
    classes = st.integers(0, c - 1)
    # Skewed draws so some classes are never predicted and some absent from the targets.
    used_t = draw(st.lists(classes, min_size=1, max_size=c))
    used_p = draw(st.lists(classes, min_size=1, max_size=c))
    targets = draw(st.lists(st.sampled_from(used_t), min_size=n, max_size=n))
    preds = draw(st.lists(st.sampled_from(used_p), min_size=n, max_size=n))
    as_logits = draw(st.booleans())
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return c, np.array(targets, dtype=np.int64), np.array(preds, dtype=np.int64), as_logits, cuts


def batches(targets, preds, as_logits, cuts, c, seed=0):
    rng = np.random.default_rng(seed)
    bounds = [0, *cuts, len(targets)]
    for lo, hi in itertools.pairwise(bounds):
        t, p = torch.from_numpy(targets[lo:hi]), torch.from_numpy(preds[lo:hi])
        if as_logits:
            logits = torch.from_numpy(rng.normal(size=(hi - lo, c))).float()
            logits[torch.arange(hi - lo), p] = logits.abs().sum(dim=1) + 1.0  # argmax is p
            yield logits, t
        else:
            yield p, t


# --------------------------------------------------------------------------- properties
@SETTINGS
@given(predictions())
def test_every_metric_matches_the_brute_force_reference(case):
    c, targets, preds, as_logits, cuts = case
    metrics = all_metrics(c)
    for x, t in batches(targets, preds, as_logits, cuts, c):
        metrics.update(x, t)
    got, want = metrics.compute(), reference(preds, targets, c)
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_many_classes_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    c, n = 100, 700
    targets, preds = rng.integers(0, c, n), rng.integers(0, c, n)
    metrics = all_metrics(c)
    for x, t in batches(targets, preds, False, [200, 450], c):
        metrics.update(x, t)
    got, want = metrics.compute(), reference(preds, targets, c)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@SETTINGS
@given(predictions(max_classes=6, max_n=40), st.integers(1, 3))
def test_sync_of_split_data_equals_one_process(case, processes):
    """Summing the state tensors across 'processes' gives the metric of all the data."""
    c, targets, preds, _, _ = case
    shards = [all_metrics(c) for _ in range(processes)]
    for i, (x, t) in enumerate(batches(targets, preds, False, list(range(0, len(targets), 3)), c)):
        shards[i % processes].update(x, t)
    totals = [sum(ts) for ts in zip(*(m.state_tensors() for m in shards), strict=True)]
    for shard in shards:
        reduced = iter(totals)
        shard.sync(lambda tensor, it=reduced: next(it))
        got = shard.compute()
        for key, value in reference(preds, targets, c).items():
            np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@SETTINGS
@given(st.integers(2, 10), st.integers(0, 40), st.integers(1, 10), st.integers(0, 2**32 - 1))
def test_top_k_accuracy_matches_a_sort_reference(c, n, k, seed):
    k = min(k, c)
    rng = np.random.default_rng(seed)
    logits = np.array([rng.permutation(c) for _ in range(n)], dtype=np.float32).reshape(n, c)
    targets = rng.integers(0, c, n)
    metric = create_metric("top_k_accuracy", num_classes=c, k=k)
    metric.update(torch.from_numpy(logits), torch.from_numpy(targets))
    top = np.argsort(-logits, axis=1)[:, :k]
    want = float(np.mean([t in row for t, row in zip(targets, top, strict=True)])) if n else 0.0
    assert metric.compute() == pytest.approx(want, abs=1e-12)


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 9), st.booleans()), max_size=6), st.integers(0, 2**32 - 1))
def test_loss_is_the_mean_per_sample_loss(batch_specs, seed):
    rng = np.random.default_rng(seed)
    metric = create_metric("loss", num_classes=3)
    every = []
    for size, per_sample in batch_specs:
        losses = rng.uniform(0, 5, size)
        every.extend(losses)
        targets = torch.zeros(size, dtype=torch.long)
        value = torch.tensor(losses) if per_sample else torch.tensor(losses.mean())
        metric.update(torch.zeros(size, 3), targets, loss=value.float())
    if every:
        assert metric.compute() == pytest.approx(float(np.mean(every)), rel=1e-6)
    else:
        assert np.isnan(metric.compute())


# --------------------------------------------------------------------------- edge cases
def test_classes_never_predicted_and_absent_follow_the_conventions():
    # class 0: predicted, present; class 1: present, never predicted; class 2: absent, predicted;
    # class 3: neither.
    preds, targets = torch.tensor([0, 0, 2]), torch.tensor([0, 1, 1])
    get = {}
    for name in ("precision", "recall", "f1"):
        m = create_metric(name, num_classes=4, average="none")
        m.update(preds, targets)
        get[name] = m.compute()
    assert get["precision"] == [0.5, 0.0, 0.0, 0.0]
    assert get["recall"] == [1.0, 0.0, 0.0, 0.0]
    assert get["f1"] == pytest.approx([2 / 3, 0.0, 0.0, 0.0])
    macro = create_metric("f1", num_classes=4, average="macro")
    macro.update(preds, targets)
    assert macro.compute() == pytest.approx((2 / 3) / 4)  # mean over all 4 classes


def test_one_class_and_no_samples():
    m = create_metric("f1", num_classes=1, average="macro")
    assert m.compute() == 0.0  # no samples at all
    m.update(torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long))
    assert m.compute() == 1.0
    acc = create_metric("accuracy", num_classes=1)
    assert acc.compute() == 0.0
    acc.update(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
    assert acc.compute() == 0.0


def test_soft_targets_and_ignore_index():
    m = create_metric("accuracy", num_classes=3)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8]])
    m.update(torch.tensor([0, 1]), soft)
    assert m.compute() == 0.5
    m.reset()
    m.update(torch.tensor([0, 1, 2]), torch.tensor([0, -100, 1]))
    assert m.compute() == 0.5
    assert sum(map(sum, create_metric("confusion_matrix", num_classes=3).compute())) == 0


def test_top_k_ties_count_for_the_sample_and_k_bounds():
    m = create_metric("top_k_accuracy", num_classes=4, k=1)
    m.update(torch.zeros(3, 4), torch.tensor([0, 1, 3]))
    assert m.compute() == 1.0
    with pytest.raises(ConfigError, match="k <= num_classes"):
        create_metric("top_k_accuracy", num_classes=3)  # default k=5
    with pytest.raises(ShapeError, match="logits"):
        top2 = create_metric("top_k_accuracy", num_classes=3, k=2)
        top2.update(torch.tensor([0]), torch.tensor([0]))


def test_confusion_matrix_normalisation():
    m = create_metric("confusion_matrix", num_classes=2, normalize="true")
    m.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
    assert m.compute() == [[0.5, 0.5], [0.0, 1.0]]
    m = create_metric("confusion_matrix", num_classes=2, normalize="pred")
    m.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
    assert m.compute() == [[1.0, 1 / 3], [0.0, 2 / 3]]


def test_bad_inputs_raise_clear_errors():
    m = create_metric("accuracy", num_classes=3)
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        m.update(torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(DataError, match="targets"):
        m.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ShapeError, match="logits have 4 classes"):
        m.update(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="targets"):
        m.update(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ConfigError, match="loss="):
        create_metric("loss", num_classes=3).update(torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(ConfigError, match="average"):
        create_metric("f1", num_classes=3, average="samples")
    with pytest.raises(ConfigError, match="Did you mean 'average'"):
        create_metric("f1", num_classes=3, averge="macro")
    with pytest.raises(UnknownNameError, match="accuracy"):
        create_metric("acuracy", num_classes=3)
    with pytest.raises(ConfigError, match="num_classes"):
        create_metric("accuracy", num_classes=0)


# --------------------------------------------------------------------------- registry & API
@pytest.mark.parametrize("name", list_metrics())
def test_every_registered_metric_streams_resets_and_exposes_sum_states(name):
    metric = create_metric(name, num_classes=3, **({"k": 2} if name == "top_k_accuracy" else {}))
    assert isinstance(metric, Metric)
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    metric.update(logits, targets, loss=torch.tensor(1.5))
    first = metric.compute()
    metric.update(logits, targets, loss=torch.tensor(1.5))
    states = [s.clone() for s in metric.state_tensors()]
    metric.reset()
    assert all(int(s.abs().sum()) == 0 for s in metric.state_tensors())
    metric.update(logits, targets, loss=torch.tensor(1.5))
    assert metric.compute() == first
    metric.sync(lambda t: t * 2)  # the state doubled ...
    for old, new in zip(states, metric.state_tensors(), strict=True):
        torch.testing.assert_close(old, new.to(old.dtype))  # ... equals two updates


def test_metrics_collection_returns_plain_python_values():
    ms = Metrics(
        {
            "acc": "accuracy",
            "f1_per_class": create_metric("f1", num_classes=2, average="none"),
            "loss": "loss",
        },
        num_classes=2,
    )
    ms.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), loss=torch.tensor(0.25))
    assert ms.compute() == {"acc": 0.5, "f1_per_class": [pytest.approx(2 / 3), 0.0], "loss": 0.25}
    assert len(ms.state_tensors()) == 3
    ms.reset()
    assert ms.compute()["acc"] == 0.0
    assert isinstance(ms["acc"], Accuracy)


def test_register_metric_roundtrip():
    register_metric("my_accuracy", Accuracy)
    try:
        assert "my_accuracy" in list_metrics("my_*")
        with pytest.raises(ConfigError, match="already registered"):
            register_metric("my_accuracy", Accuracy)
    finally:
        METRICS.unregister("my_accuracy")


@pytest.mark.cuda
def test_updates_do_not_synchronise_with_the_host():
    torch.cuda.synchronize()
    ms = Metrics(["accuracy", "f1", "confusion_matrix", "loss"], num_classes=10)
    topk = create_metric("top_k_accuracy", num_classes=10)
    logits = torch.randn(64, 10, device="cuda")
    targets = torch.randint(0, 10, (64,), device="cuda")
    loss = torch.tensor(0.5, device="cuda")
    ms.update(logits, targets, loss)  # first update moves the state to the device
    topk.update(logits, targets)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            ms.update(logits, targets, loss)
            topk.update(logits, targets)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ms.compute()["accuracy"] >= 0.0
