"""The Trainer's gradient-accumulation rule, checked against one large batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def accumulated_grads(model, x, y, micro_batches):
    model.zero_grad()
    for xs, ys in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
        (F.cross_entropy(model(xs), ys) / micro_batches).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_four_batches_of_eight_accumulate_to_one_batch_of_thirty_two():
    """The Trainer's rule: backward(loss / accum) per micro-batch, then one optimizer step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Dropout(0.0), nn.Linear(16, 4)).double()
    x, y = torch.randn(32, 10, dtype=torch.float64), torch.randint(0, 4, (32,))
    whole = accumulated_grads(model, x, y, 1)
    parts = accumulated_grads(model, x, y, 4)
    for a, b in zip(whole, parts, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # and the optimizer steps that follow are the same
    states = []
    for micro in (1, 4):
        m = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Dropout(0.0), nn.Linear(16, 4)).double()
        m.load_state_dict(model.state_dict())
        opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9)
        for _ in range(3):
            accumulated_grads(m, x, y, micro)
            opt.step()
        states.append(m.state_dict())
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-12, atol=1e-14)


def test_batchnorm_breaks_the_equality():
    """Why the rule is stated for models without BatchNorm: batch statistics differ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)).double()
    x, y = torch.randn(32, 10, dtype=torch.float64), torch.randint(0, 4, (32,))
    whole, parts = accumulated_grads(model, x, y, 1), accumulated_grads(model, x, y, 4)
    assert not torch.allclose(whole[0], parts[0])
