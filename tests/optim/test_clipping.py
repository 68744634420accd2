"""Gradient clipping by norm and by value."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.optim import clip_gradients


def test_a_non_positive_limit_is_refused():
    with pytest.raises(ConfigError, match="max_norm"):
        clip_gradients([], max_norm=0.0)


def with_grads(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(s)) for s in ((3, 4), (5,), (2, 2, 2))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * 3
    return params


def test_clip_by_norm_scales_all_gradients_to_the_limit():
    params = with_grads()
    before = [p.grad.clone() for p in params]
    total = torch.sqrt(sum((g**2).sum() for g in before))
    norm = clip_gradients(params, max_norm=1.0)
    torch.testing.assert_close(norm, total)
    scale = 1.0 / (float(total) + 1e-6)
    for b, p in zip(before, params, strict=True):
        torch.testing.assert_close(p.grad, b * scale)
    after = torch.sqrt(sum((p.grad**2).sum() for p in params))
    assert float(after) == pytest.approx(1.0, rel=1e-5)


def test_clip_by_value_then_norm_and_plain_norm_for_logging():
    params = with_grads(1)
    before = [p.grad.clone() for p in params]
    norm = clip_gradients(params)
    torch.testing.assert_close(norm, torch.sqrt(sum((g**2).sum() for g in before)))
    assert all(torch.equal(b, p.grad) for b, p in zip(before, params, strict=True))
    clipped = [b.clamp(-0.5, 0.5) for b in before]
    norm = clip_gradients(params, max_value=0.5, max_norm=100.0)
    torch.testing.assert_close(norm, torch.sqrt(sum((g**2).sum() for g in clipped)))
    assert all(torch.equal(c, p.grad) for c, p in zip(clipped, params, strict=True))
    params = with_grads(2)
    inf_norm = clip_gradients(params, norm_type=float("inf"))
    assert float(inf_norm) == max(float(p.grad.abs().max()) for p in params)
    model = nn.Linear(2, 2)
    assert float(clip_gradients(model, max_norm=1.0)) == 0.0  # no gradients yet
