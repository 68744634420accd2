"""Losses against PyTorch and against NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_kit.errors import ConfigError, ShapeError, UnknownNameError
from finetune_kit.optim.losses import LOSSES, create_loss, list_losses, register_loss

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def batch(draw):
    n, c = draw(st.integers(1, 8)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, c))
    targets = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c), n)
    return logits, targets, probs


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def t64(a):
    return torch.from_numpy(np.asarray(a))


@SETTINGS
@given(batch(), st.sampled_from([0.0, 0.1, 0.3]))
def test_cross_entropy_matches_the_formula(data, smoothing):
    logits, targets, probs = data
    c = logits.shape[1]
    log_p = log_softmax(logits)
    onehot = np.eye(c)[targets]
    for y_torch, y_np in ((t64(targets), onehot), (t64(probs), probs)):
        q = (1 - smoothing) * y_np + smoothing / c
        want = -(q * log_p).sum(axis=1).mean()
        got = create_loss("cross_entropy", label_smoothing=smoothing)(t64(logits), y_torch)
        assert float(got) == pytest.approx(want, rel=1e-10, abs=1e-12)


@SETTINGS
@given(batch())
def test_cross_entropy_weights_and_ignore_index_are_torch_s(data):
    logits, targets, _ = data
    c = logits.shape[1]
    weights = np.linspace(0.5, 2.0, c)
    targets = targets.copy()
    targets[0] = -1
    loss = create_loss("cross_entropy", class_weights=weights.tolist(), ignore_index=-1, label_smoothing=0.1)
    want = F.cross_entropy(
        t64(logits), t64(targets), weight=t64(weights).float().double(), ignore_index=-1, label_smoothing=0.1
    )
    got = loss(t64(logits), t64(targets))
    assert float(got) == pytest.approx(float(want), rel=1e-6, nan_ok=True)


@SETTINGS
@given(batch(), st.sampled_from([0.0, 0.5, 2.0]), st.booleans())
def test_focal_matches_the_formula(data, gamma, with_alpha):
    logits, targets, probs = data
    c = logits.shape[1]
    alpha = np.linspace(0.25, 1.0, c) if with_alpha else np.ones(c)
    log_p = log_softmax(logits)
    p = np.exp(log_p)
    loss = create_loss("focal", gamma=gamma, alpha=alpha.tolist() if with_alpha else None)
    for y_torch, y_np in ((t64(targets), np.eye(c)[targets]), (t64(probs), probs)):
        want = -(alpha * y_np * (1 - p) ** gamma * log_p).sum(axis=1).mean()
        assert float(loss(t64(logits), y_torch)) == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_focal_with_gamma_zero_is_cross_entropy_and_skips_ignored():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4), torch.tensor([0, 1, -100, 3, 2, -100])
    focal = create_loss("focal", gamma=0.0, label_smoothing=0.2)
    ce = create_loss("cross_entropy", label_smoothing=0.2)
    torch.testing.assert_close(focal(logits, targets), ce(logits, targets))
    per_sample = create_loss("focal", reduction="none")(logits, targets)
    assert per_sample.shape == (6,) and per_sample[2] == 0 and per_sample[5] == 0


@SETTINGS
@given(batch())
def test_soft_target_cross_entropy_is_timm_s_formula(data):
    logits, _, probs = data
    want = torch.sum(-t64(probs) * F.log_softmax(t64(logits), dim=-1), dim=-1).mean()
    got = create_loss("soft_target_cross_entropy")(t64(logits), t64(probs))
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    ce = create_loss("cross_entropy")(t64(logits), t64(probs))
    assert float(got) == pytest.approx(float(ce), rel=1e-10)


@pytest.mark.parametrize("name", list_losses())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_registered_loss_takes_soft_targets_and_back_propagates(name, reduction):
    logits = torch.randn(5, 3, requires_grad=True)
    probs = torch.softmax(torch.randn(5, 3), dim=1)
    loss = create_loss(name, reduction=reduction, label_smoothing=0.1)(logits, probs)
    assert loss.shape == ((5,) if reduction == "none" else ())
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    if name != "soft_target_cross_entropy":
        out = create_loss(name, reduction=reduction)(logits, torch.tensor([0, 1, 2, 0, 1]))
        assert torch.isfinite(out).all()


def test_shape_and_option_errors():
    ce = create_loss("cross_entropy")
    with pytest.raises(ShapeError, match=r"\(N, C\)"):
        ce(torch.randn(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ShapeError, match="shape"):
        ce(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="soft targets"):
        ce(torch.randn(4, 3), torch.rand(4, 2))
    with pytest.raises(ShapeError, match="'cross_entropy' for class indices"):
        create_loss("soft_target_cross_entropy")(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="one weight per class"):
        create_loss("cross_entropy", class_weights=[1.0, 2.0])(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="label_smoothing"):
        create_loss("cross_entropy", label_smoothing=1.0)
    with pytest.raises(ConfigError, match="Did you mean 'label_smoothing'"):
        create_loss("cross_entropy", label_smothing=0.1)
    with pytest.raises(ConfigError, match="reduction"):
        create_loss("focal", reduction="avg")
    with pytest.raises(UnknownNameError, match="focal"):
        create_loss("focall")


def test_class_weights_follow_the_module_to_a_dtype():
    loss = create_loss("cross_entropy", class_weights=[1.0, 3.0]).double()
    out = loss(torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 1]))
    assert out.dtype == torch.float64


def test_register_loss():
    register_loss("l1_sum", lambda: torch.nn.L1Loss(reduction="sum"))
    try:
        assert "l1_sum" in list_losses()
        assert float(create_loss("l1_sum")(torch.ones(2), torch.zeros(2))) == 2.0
    finally:
        LOSSES.unregister("l1_sum")
