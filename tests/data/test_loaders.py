"""make_loaders: the path choice, its reason, the contract both paths share."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.data import create_datasets, make_loaders
from finetune_kit.data.bundle import DataBundle
from finetune_kit.data.device_loader import DeviceLoader
from finetune_kit.data.loaders import default_memory_budget
from finetune_kit.data.presets import Preset
from finetune_kit.data.torch_loader import TorchLoader
from finetune_kit.errors import ConfigError


@pytest.fixture(scope="module")
def bundle() -> DataBundle:
    return create_datasets("fake", train_size=60, test_size=20, image_size=8, val_fraction=0.2)


def test_auto_picks_device_and_says_why(bundle) -> None:
    loaders = make_loaders(bundle, batch_size=16)
    assert loaders.kind == "device" and isinstance(loaders.train, DeviceLoader)
    assert loaders.reason.startswith("device:") and "budget" in loaders.reason
    assert (len(loaders.train), len(loaders.val), len(loaders.test)) == (3, 1, 2)


def test_over_budget_falls_back_to_dataloader(bundle) -> None:
    loaders = make_loaders(bundle, batch_size=16, memory_budget_bytes=100)
    assert loaders.kind == "dataloader" and isinstance(loaders.train, TorchLoader)
    assert "over the" in loaders.reason


def test_forced_paths(bundle) -> None:
    assert make_loaders(bundle, batch_size=16, loader="dataloader").kind == "dataloader"
    assert make_loaders(bundle, batch_size=16, loader="device", memory_budget_bytes=1).kind == "device"
    with pytest.raises(ConfigError, match="loader='fast'"):
        make_loaders(bundle, batch_size=16, loader="fast")


def test_device_impossible_is_a_clear_error(bundle) -> None:
    with pytest.raises(ConfigError, match="impossible here: custom per-sample transforms"):
        make_loaders(bundle, batch_size=16, loader="device", train_transform=lambda x: x)
    no_device = Preset("slow", "DataLoader only", device_capable=False)
    other = create_datasets("fake", train_size=20, test_size=4, image_size=8, preset=no_device)
    with pytest.raises(ConfigError, match="'slow' has no device implementation"):
        make_loaders(other, batch_size=4, loader="device")
    auto = make_loaders(other, batch_size=4)
    assert auto.kind == "dataloader" and "no device implementation" in auto.reason


def test_both_paths_same_order_and_same_eval_batches(bundle) -> None:
    dev = make_loaders(bundle, batch_size=16, loader="device")
    dl = make_loaders(bundle, batch_size=16, loader="dataloader")
    for a, b in zip(dev.test.iter_epoch(0), dl.test.iter_epoch(0), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ya = torch.cat([y for _, y in dev.train.iter_epoch(4)])
    yb = torch.cat([y for _, y in dl.train.iter_epoch(4)])
    assert torch.equal(ya, yb)


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_contract_of_every_loader(bundle, kind: str) -> None:
    loaders = make_loaders(bundle, batch_size=16, loader=kind, eval_batch_size=7, channels_last=True)
    for loader in (loaders.train, loaders.val, loaders.test):
        assert loader.kind == kind and loader.batch_size in (16, 7)
        out = list(loader.iter_epoch(1))
        assert len(out) == len(loader)
        assert sum(len(y) for _, y in out) == loader.num_samples
        x, y = out[0]
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (3, 8, 8)
        assert x.is_contiguous(memory_format=torch.channels_last)
        resumed = list(loader.iter_epoch(1, 1))
        assert len(resumed) == len(out) - 1
        assert all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(out[1:], resumed, strict=True)
        )
    assert loaders.val.batch_size == 7


def test_augment_false_gives_eval_preprocessing(bundle) -> None:
    loaders = make_loaders(bundle, batch_size=48, augment=False)
    x, y = next(loaders.train.iter_epoch(0))
    plain = make_loaders(bundle, batch_size=48, augment=False, loader="dataloader")
    x2, y2 = next(plain.train.iter_epoch(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_no_val_split(bundle) -> None:
    data = create_datasets("fake", train_size=20, test_size=4, image_size=8, val_fraction=0)
    assert make_loaders(data, batch_size=4).val is None


def test_imagenet_preset_resizes_on_both_paths() -> None:
    data = create_datasets("fake", train_size=30, test_size=4, image_size=16, preset="imagenet")
    for kind in ("device", "dataloader"):
        loaders = make_loaders(data, batch_size=4, loader=kind)
        assert next(loaders.train.iter_epoch(0))[0].shape == (4, 3, 224, 224)
        assert next(loaders.test.iter_epoch(0))[0].shape == (4, 3, 224, 224)


def test_default_budget_is_capped() -> None:
    assert 0 < default_memory_budget("cpu") <= 8 * 1024**3


def test_bad_eval_batch_size(bundle) -> None:
    with pytest.raises(ConfigError, match="eval_batch_size"):
        make_loaders(bundle, batch_size=4, eval_batch_size=0)


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_cuda_batches(bundle, kind: str) -> None:
    loaders = make_loaders(bundle, batch_size=16, device="cuda", loader=kind, channels_last=True)
    x, y = next(loaders.train.iter_epoch(0))
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert x.is_contiguous(memory_format=torch.channels_last)
    cpu = make_loaders(bundle, batch_size=16, loader=kind)
    xc, yc = next(cpu.train.iter_epoch(0))
    assert torch.equal(y.cpu(), yc)
    torch.testing.assert_close(x.cpu(), xc)


def test_make_loaders_takes_device_names_and_refuses_a_missing_gpu(monkeypatch):
    """``device="auto"`` resolves as everywhere else; a GPU that is not there is a DeviceError."""
    from finetune_kit.errors import DeviceError

    data = create_datasets("fake", train_size=16, test_size=4, in_channels=1, image_size=8, val_fraction=0)
    assert make_loaders(data, batch_size=4, device="auto").train is not None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        make_loaders(data, batch_size=4, device="cuda")
