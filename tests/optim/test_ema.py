"""ModelEma: the moving-average arithmetic, BatchNorm buffers, state and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_kit.errors import CheckpointError, ConfigError, ShapeError
from finetune_kit.optim import ModelEma


def small_net():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))


def train_step(model, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 2, (8,), generator=g)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize("warmup", [False, True])
def test_every_float_entry_is_averaged_and_integer_buffers_are_copied(warmup):
    torch.manual_seed(0)
    model = small_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    decay = 0.9
    ema = ModelEma(model, decay=decay, warmup=warmup)
    expected = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    for n in range(6):
        train_step(model, opt, n)
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        assert ema.current_decay() == pytest.approx(d)
        ema.update(model)
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                expected[key] = d * expected[key] + (1 - d) * value.double()
            else:
                expected[key] = value.clone().double()
    got = ema.module.state_dict()
    assert "1.running_mean" in got and "1.num_batches_tracked" in got
    for key, value in expected.items():
        torch.testing.assert_close(got[key].double(), value, rtol=1e-6, atol=1e-7, msg=key)
    assert int(got["1.num_batches_tracked"]) == 6
    assert ema.num_updates == 6


def test_the_copy_is_frozen_in_eval_mode_and_independent():
    model = small_net()
    ema = ModelEma(model, decay=0.5)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        model[4].weight.add_(1.0)
    assert not torch.equal(model[4].weight, ema.module[4].weight)
    ema.set(model)
    assert torch.equal(model[4].weight, ema.module[4].weight)


def test_state_dict_round_trip():
    torch.manual_seed(1)
    model = small_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ema = ModelEma(model, decay=0.8, warmup=True)
    for n in range(3):
        train_step(model, opt, n)
        ema.update(model)
    restored = ModelEma(small_net(), decay=0.1)
    restored.load_state_dict(ema.state_dict())
    assert (restored.decay, restored.warmup, restored.num_updates) == (0.8, True, 3)
    for key, value in ema.module.state_dict().items():
        assert torch.equal(value, restored.module.state_dict()[key])
    with pytest.raises(CheckpointError, match="does not fit"):
        ModelEma(nn.Linear(2, 2)).load_state_dict(ema.state_dict())


def test_wrapped_models_and_devices():
    model = small_net()
    ema = ModelEma(nn.DataParallel(model), decay=0.5, device="cpu")
    with torch.no_grad():
        model[4].bias.fill_(2.0)
        ema.module[4].bias.fill_(0.0)
    ema.update(nn.DataParallel(model))
    torch.testing.assert_close(ema.module[4].bias, torch.ones(2))


def test_errors():
    with pytest.raises(ConfigError, match="decay"):
        ModelEma(nn.Linear(1, 1), decay=1.0)
    ema = ModelEma(nn.Linear(1, 1))
    with pytest.raises(ShapeError, match="does not match"):
        ema.update(nn.Linear(1, 1, bias=False))
