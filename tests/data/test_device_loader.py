"""DeviceLoader: exact resume, seed determinism, permutations, DDP shards, augmentation."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.data.augment import BatchTransform, crop_flip, sample_crop_flip
from finetune_kit.data.device_loader import DeviceLoader
from finetune_kit.data.sampling import epoch_order
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import ConfigError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def dataset() -> ImageTensorDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (37, 3, 6, 6), dtype=torch.uint8, generator=g)
    return ImageTensorDataset(images, torch.arange(37) % 5, [str(i) for i in range(5)])


def train_loader(ds, **kw) -> DeviceLoader:
    args = dict(batch_size=8, mean=MEAN, std=STD, shuffle=True, crop_padding=2, hflip=True, seed=3)
    return DeviceLoader(ds, **{**args, **kw})


def batches(loader, epoch=0, start=0):
    return list(loader.iter_epoch(epoch, start))


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("start", [0, 1, 3, 4, 5])
def test_resume_from_any_batch(dataset, start: int) -> None:
    loader = train_loader(dataset)
    assert_same(batches(loader, 2, start), batches(loader, 2)[start:])


def test_same_seed_same_batches_independent_of_global_rng(dataset) -> None:
    torch.manual_seed(0)
    a = batches(train_loader(dataset), 1)
    torch.manual_seed(1)
    torch.rand(1000)
    b = batches(train_loader(dataset), 1)
    assert_same(a, b)
    c = batches(train_loader(dataset, seed=4), 1)
    assert not torch.equal(a[0][0], c[0][0])


def test_epochs_differ_and_each_is_a_permutation(dataset) -> None:
    loader = train_loader(dataset)
    ys = [torch.cat([y for _, y in batches(loader, e)]) for e in range(2)]
    for e in range(2):
        order = epoch_order(37, shuffle=True, seed=3, epoch=e)
        assert torch.equal(ys[e], dataset.targets[order])
    assert len(loader) == 5 and loader.num_samples == 37
    assert [len(y) for _, y in batches(loader)] == [8, 8, 8, 8, 5]


def test_augmentation_is_the_planned_crop_and_flip(dataset) -> None:
    loader = train_loader(dataset)
    order = epoch_order(37, shuffle=True, seed=3, epoch=0)
    params = sample_crop_flip(37, padding=2, flip=True, seed=3, epoch=0)
    expected = BatchTransform(MEAN, STD)(
        crop_flip(dataset.images[order], params.top, params.left, params.flip, padding=2)
    )
    got = torch.cat([x for x, _ in batches(loader)])
    assert torch.equal(got, expected)


def test_eval_loader_keeps_order_and_only_normalises(dataset) -> None:
    loader = DeviceLoader(dataset, batch_size=10, mean=MEAN, std=STD)
    x = torch.cat([x for x, _ in batches(loader, 5)])
    assert torch.equal(x, BatchTransform(MEAN, STD)(dataset.images))
    assert_same(batches(loader, 0), batches(loader, 7))


def test_drop_last(dataset) -> None:
    loader = train_loader(dataset, drop_last=True)
    assert len(loader) == 4 and all(len(y) == 8 for _, y in batches(loader))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_shards_union_equals_single_process(dataset, world_size: int) -> None:
    """Step k of all ranks together = step k of one process with a world_size-times larger batch
    (the same samples, augmented the same way) where the epoch divides evenly."""
    single = train_loader(dataset, batch_size=4 * world_size)
    ranks = [train_loader(dataset, batch_size=4, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(r) for r in ranks}) == 1
    ones = batches(single, 1)
    shards = [batches(r, 1) for r in ranks]
    full_steps = 37 // (4 * world_size)
    for k in range(full_steps):
        xs, ys = ones[k]
        got_y = torch.cat([shards[r][k][1] for r in range(world_size)])
        got_x = torch.cat([shards[r][k][0] for r in range(world_size)])
        key = lambda x, y: sorted(zip(y.tolist(), x.flatten(1).sum(1).tolist(), strict=True))  # noqa: E731
        assert key(got_x, got_y) == key(xs, ys)
    seen = torch.cat([y for shard in shards for _, y in shard])
    assert seen.bincount(minlength=5).sum() >= 37


def test_channels_last_and_resize(dataset) -> None:
    loader = DeviceLoader(dataset, batch_size=4, mean=MEAN, std=STD, resize=12, channels_last=True)
    x, y = next(loader.iter_epoch(0))
    assert x.shape == (4, 3, 12, 12) and x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64


def test_bad_batch_size(dataset) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        DeviceLoader(dataset, batch_size=0, mean=MEAN, std=STD)


@pytest.mark.cuda
def test_cuda_matches_cpu(dataset) -> None:
    cpu = batches(train_loader(dataset), 1)
    gpu = batches(train_loader(dataset, device="cuda"), 1)
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.device.type == "cuda"
        assert torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu())
