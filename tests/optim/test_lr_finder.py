"""The lr range test: restoration, early stop, suggestions, plot, and a real Fashion-MNIST run."""

from __future__ import annotations

import copy
import gzip
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.errors import ConfigError, DataError
from finetune_kit.optim import create_optimizer
from finetune_kit.optim.lr_finder import LRFindResult, lr_find, steepest_lr, valley_lr


def toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def bn_net():
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_everything_is_restored_bit_for_bit():
    torch.manual_seed(0)
    model = bn_net()
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4)
    x, y = toy_data()
    for _ in range(3):  # give the optimizer some momentum state
        opt.zero_grad()
        F.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
    model.eval()
    weights, opt_state = snapshot(model), copy.deepcopy(opt.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    result = lr_find(model, (x, y), optimizer=opt, num_steps=40, batch_size=32)
    assert len(result.lrs) > 10
    assert_same_state(weights, snapshot(model))  # parameters and BatchNorm buffers
    after = opt.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    for k, state in opt_state["state"].items():
        assert torch.equal(state["momentum_buffer"], after["state"][k]["momentum_buffer"])
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))
    assert not any(m.training for m in model.modules())
    assert torch.equal(rng, torch.get_rng_state())


def test_the_lr_grows_exponentially_and_groups_keep_their_multipliers():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    groups = [{"params": [model.weight], "lr_mult": 1.0}, {"params": [model.bias], "lr_mult": 0.1}]
    opt = create_optimizer(groups, "sgd", lr=1.0)
    seen = []

    def loss(logits, target):
        seen.append([g["lr"] for g in opt.param_groups])
        return F.cross_entropy(logits, target)

    x, y = toy_data()
    result = lr_find(
        model, (x, y), loss=loss, optimizer=opt, start_lr=1e-4, end_lr=1e-2, num_steps=5, batch_size=64
    )
    assert result.lrs == pytest.approx([1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2])
    assert [a for a, _ in seen] == pytest.approx(result.lrs)
    assert [b for _, b in seen] == pytest.approx([0.1 * lr for lr in result.lrs])
    assert not result.diverged and len(result.raw_losses) == 5


def test_divergence_stops_the_test_early():
    torch.manual_seed(0)
    x, y = toy_data()
    result = lr_find(nn.Linear(6, 2), (x * 100, y), start_lr=1e-3, end_lr=1e6, num_steps=100, batch_size=64)
    assert result.diverged and len(result.lrs) < 100
    assert result.suggested is not None and result.suggested < result.lrs[-1]


def test_loaders_are_cycled_and_one_shot_iterators_end_the_test():
    x, y = toy_data(64)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    assert len(lr_find(nn.Linear(6, 2), batches, num_steps=10, end_lr=1e-2).lrs) == 10
    assert len(lr_find(nn.Linear(6, 2), iter(batches), num_steps=10, end_lr=1e-2).lrs) == 4
    with pytest.raises(DataError, match="no batches"):
        lr_find(nn.Linear(6, 2), [], num_steps=10)
    with pytest.raises(ConfigError, match="start_lr < end_lr"):
        lr_find(nn.Linear(6, 2), batches, start_lr=1.0, end_lr=0.1)


def test_a_data_bundle_is_batched_and_a_dataset_of_samples_is_refused():
    import finetune_kit as fk

    data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=8, train_size=48, test_size=8)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    result = lr_find(net, data, num_steps=12, batch_size=16, end_lr=1.0)  # 3 batches, cycled
    assert len(result.lrs) == 12 and not result.diverged
    with pytest.raises(ConfigError, match="dataset of single samples"):
        lr_find(net, data.train, num_steps=5)
    with pytest.raises(ConfigError, match="cannot take batches from a int"):
        lr_find(net, 3, num_steps=5)


def test_suggestion_rules_on_known_curves():
    lrs = list(np.geomspace(1e-5, 1.0, 51))
    logs = np.log10(lrs)
    curve = list(2.0 - np.tanh(3 * (logs + 2.5)))  # steepest at lr = 10**-2.5
    assert steepest_lr(lrs, curve) == pytest.approx(10**-2.5, rel=0.3)
    # the whole curve decreases: valley is about halfway down it, at int(50/3) + int(50/6)
    assert valley_lr(lrs, curve) == lrs[24]
    assert steepest_lr(lrs[:4], curve[:4]) is None and valley_lr(lrs[:2], curve[:2]) is None
    result = LRFindResult(lrs, curve, curve, 0.01, None)
    assert result.suggested == 0.01


def test_plot_is_written_as_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = toy_data()
    path = tmp_path / "plots" / "lr.png"
    result = lr_find(nn.Linear(6, 2), (x, y), num_steps=20, plot_path=path)
    assert result.plot_path == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    x, y = toy_data()
    with pytest.raises(ConfigError, match=r"pip install finetune-kit\[plots\]"):
        lr_find(nn.Linear(6, 2), (x, y), num_steps=5, plot_path=tmp_path / "lr.png")


# --------------------------------------------------------------------------- real data
def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == magic
    if magic == 2051:
        n, h, w = (int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, h, w)
    return np.frombuffer(data, np.uint8, offset=8)


def fashion_mnist(root, split, n):
    images = read_idx(root / f"{split}-images-idx3-ubyte.gz", 2051)[:n]
    labels = read_idx(root / f"{split}-labels-idx1-ubyte.gz", 2049)[:n]
    x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - 0.286) / 0.353
    return x, torch.from_numpy(labels.astype(np.int64))


def conv_net():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


@pytest.fixture
def one_thread():
    """One intra-op thread: with other test runs sharing the CPU, OpenMP threads spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_fashion_mnist_suggestion_trains_and_weights_are_untouched(fashion_mnist_dir, one_thread):
    torch.manual_seed(0)
    x_train, y_train = fashion_mnist(fashion_mnist_dir, "train", 4096)
    x_test, y_test = fashion_mnist(fashion_mnist_dir, "t10k", 1000)
    model = conv_net()
    before = snapshot(model)
    result = lr_find(model, (x_train, y_train), start_lr=1e-5, num_steps=60, batch_size=16)
    assert_same_state(before, snapshot(model))
    lr = result.suggested
    assert 1e-4 < lr < 1.0, result
    opt = create_optimizer(model, "sgd", lr=lr)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(120):
        idx = torch.randint(0, len(x_train), (16,), generator=g)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-20:]) < 0.55 * np.mean(losses[:10])
    with torch.no_grad():
        accuracy = float((model.eval()(x_test).argmax(dim=1) == y_test).float().mean())
    assert accuracy > 0.5  # chance is 0.1; the suggested lr trains
