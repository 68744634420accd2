"""Arithmetic of mixup, cutmix, gradient clipping and gradient accumulation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_kit.data.mixing import (
    MixupCutmix,
    cutmix,
    mixup,
    soft_targets,
)
from finetune_kit.errors import ConfigError, ShapeError

SETTINGS = settings(max_examples=50, deadline=None)


def timm_mixup_target(y, num_classes, lam, smoothing):
    """timm.data.mixup.mixup_target, written out."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = torch.full((len(y), num_classes), off).scatter_(1, y.view(-1, 1), on)
    y2 = torch.full((len(y), num_classes), off).scatter_(1, y.flip(0).view(-1, 1), on)
    return y1 * lam + y2 * (1.0 - lam)


@SETTINGS
@given(st.integers(1, 9), st.integers(2, 6), st.floats(0.0, 1.0), st.sampled_from([0.0, 0.1]))
def test_mixup_is_a_convex_combination_with_the_flipped_batch(n, c, lam, smoothing):
    torch.manual_seed(n)
    x = torch.randn(n, 3, 4, 4, dtype=torch.float64)
    y = torch.randint(0, c, (n,))
    xm, ym = mixup(x, y, 0.4, c, label_smoothing=smoothing, lam=lam)
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x.flip(0))
    torch.testing.assert_close(ym, timm_mixup_target(y, c, lam, smoothing))
    torch.testing.assert_close(ym.sum(dim=1), torch.ones(n))


def test_mixup_draws_lam_from_the_generator_reproducibly():
    x, y = torch.randn(6, 1, 2, 2), torch.tensor([0, 1, 2, 3, 4, 5])
    runs = [mixup(x, y, 0.4, 6, torch.Generator().manual_seed(7)) for _ in range(2)]
    torch.testing.assert_close(runs[0][0], runs[1][0])
    lam = float(runs[0][1][0, 0])  # sample 0 (class 0) is mixed with sample 5 (class 5)
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(runs[0][0], lam * x + (1 - lam) * x.flip(0))
    other = mixup(x, y, 0.4, 6, torch.Generator().manual_seed(8))[1]
    assert not torch.equal(other, runs[0][1])


@SETTINGS
@given(st.integers(2, 8), st.integers(1, 12), st.integers(1, 12), st.floats(0.0, 1.0), st.integers(0, 1000))
def test_cutmix_pastes_a_box_and_weights_targets_by_its_area(n, h, w, lam, seed):
    c = n
    # sample i is filled with the value i, so every pixel says where it came from
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, h, w).contiguous()
    y = torch.arange(n)
    xm, ym = cutmix(x, y, 1.0, c, torch.Generator().manual_seed(seed), lam=lam)
    partner = torch.arange(n).flip(0)
    for i in range(n):
        if partner[i] == i:
            continue
        from_partner = xm[i] == partner[i]
        assert bool(((xm[i] == i) | from_partner).all())  # pixels are copied, not blended
        area = float(from_partner.float().mean())
        assert float(ym[i, partner[i]]) == pytest.approx(area, abs=1e-6)
        assert float(ym[i, i]) == pytest.approx(1 - area, abs=1e-6)
        rows = from_partner[0].any(dim=1).nonzero().flatten().tolist()
        cols = from_partner[0].any(dim=0).nonzero().flatten().tolist()
        if rows:  # the pasted pixels form one rectangle
            assert rows == list(range(rows[0], rows[-1] + 1))
            assert int(from_partner[0].sum()) == len(rows) * len(cols)
    assert torch.equal(x, torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, h, w))


def test_cutmix_with_lam_one_changes_nothing():
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    xm, ym = cutmix(x, y, 1.0, 4, lam=1.0)
    assert torch.equal(xm, x)
    assert torch.equal(ym, F.one_hot(y, 4).float())


def test_mixup_cutmix_switcher():
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 6, 6).contiguous()
    y = torch.arange(8)
    off = MixupCutmix(prob=0.0, label_smoothing=0.1, num_classes=8)
    xm, ym = off(x, y)
    assert torch.equal(xm, x)
    torch.testing.assert_close(ym, soft_targets(y, 8, 0.1))
    only_cutmix = MixupCutmix(
        mixup_alpha=0.0,
        cutmix_alpha=1.0,
        label_smoothing=0.0,
        num_classes=8,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(5):
        xm, _ = only_cutmix(x, y)
        assert bool((xm == xm.round()).all())  # copied pixels only
    only_mixup = MixupCutmix(
        mixup_alpha=1.0,
        cutmix_alpha=1.0,
        switch_prob=0.0,
        label_smoothing=0.0,
        num_classes=8,
        generator=torch.Generator().manual_seed(0),
    )
    xm, ym = only_mixup(x, y)
    lam = float(ym[0, 0])
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x.flip(0))
    a = MixupCutmix(num_classes=8, generator=torch.Generator().manual_seed(3))(x, y)
    b = MixupCutmix(num_classes=8, generator=torch.Generator().manual_seed(3))(x, y)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="alpha"):
        mixup(torch.randn(2, 3), torch.tensor([0, 1]), 0.0, 2)
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        cutmix(torch.randn(2, 3), torch.tensor([0, 1]), 1.0, 2)
    with pytest.raises(ShapeError, match="targets"):
        soft_targets(torch.rand(2, 3), 2)
    with pytest.raises(ConfigError, match="prob"):
        MixupCutmix(prob=1.5, num_classes=2)
