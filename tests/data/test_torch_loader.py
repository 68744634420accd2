"""TorchLoader: DataLoader path with exact resume, worker-count independence, seeded samples."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from finetune_kit.data.augment import BatchTransform
from finetune_kit.data.sampling import epoch_order
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.data.torch_loader import TorchLoader
from finetune_kit.errors import ConfigError

MEAN, STD = (0.5,), (0.25,)
AUGMENT = v2.Compose([v2.RandomCrop(6, padding=2), v2.RandomHorizontalFlip()])


@pytest.fixture(scope="module")
def dataset() -> ImageTensorDataset:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (21, 1, 6, 6), dtype=torch.uint8, generator=g)
    return ImageTensorDataset(images, torch.arange(21) % 3, ["a", "b", "c"])


def make(ds, **kw) -> TorchLoader:
    args = dict(batch_size=4, mean=MEAN, std=STD, shuffle=True, transform=AUGMENT, seed=5)
    return TorchLoader(ds, **{**args, **kw})


def batches(loader, epoch=0, start=0):
    return list(loader.iter_epoch(epoch, start))


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("start", [0, 2, 5])
def test_resume_from_any_batch(dataset, start: int) -> None:
    loader = make(dataset)
    assert_same(batches(loader, 1, start), batches(loader, 1)[start:])


def test_order_is_the_seeded_epoch_permutation(dataset) -> None:
    y = torch.cat([y for _, y in batches(make(dataset), 3)])
    assert torch.equal(y, dataset.targets[epoch_order(21, shuffle=True, seed=5, epoch=3)])


@pytest.fixture
def file_system_sharing():
    """conftest refuses every socket connect, AF_UNIX too, and torch's default tensor sharing
    passes file descriptors over a Unix socket; share through files in /dev/shm instead."""
    import torch.multiprocessing as mp

    before = mp.get_sharing_strategy()
    mp.set_sharing_strategy("file_system")
    yield
    mp.set_sharing_strategy(before)


def test_workers_do_not_change_batches(dataset, file_system_sharing) -> None:
    single = batches(make(dataset), 2)
    workers = make(dataset, num_workers=2)
    assert_same(single, batches(workers, 2))
    assert_same(single[3:], batches(workers, 2, 3))  # persistent workers, second iteration


def test_same_seed_identical_and_global_rng_untouched(dataset) -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = batches(make(dataset))
    assert torch.equal(state, torch.get_rng_state())
    assert_same(a, batches(make(dataset)))
    assert not torch.equal(
        torch.cat([x for x, _ in a]), torch.cat([x for x, _ in batches(make(dataset, seed=6))])
    )


def test_sample_augmentation_independent_of_batch_size(dataset) -> None:
    """A sample's augmentation depends on (seed, epoch, index), not on its batch."""
    a = torch.cat([x for x, _ in batches(make(dataset, batch_size=4))])
    b = torch.cat([x for x, _ in batches(make(dataset, batch_size=7))])
    assert torch.equal(a, b)


def test_eval_without_transform_only_normalises(dataset) -> None:
    loader = TorchLoader(dataset, batch_size=8, mean=MEAN, std=STD)
    x = torch.cat([x for x, _ in batches(loader)])
    assert torch.equal(x, BatchTransform(MEAN, STD)(dataset.images))
    assert len(loader) == 3 and loader.num_samples == 21 and loader.kind == "dataloader"


def test_float_transform_output_is_used_as_is(dataset) -> None:
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True)])
    x, _ = next(TorchLoader(dataset, batch_size=3, mean=MEAN, std=STD, transform=to_float).iter_epoch(0))
    assert torch.equal(x, v2.ToDtype(torch.float32, scale=True)(dataset.images[:3]))


def test_drop_last_and_channels_last(dataset) -> None:
    loader = make(dataset, drop_last=True, channels_last=True)
    out = batches(loader)
    assert len(out) == 5 and all(len(y) == 4 for _, y in out)
    assert out[0][0].is_contiguous(memory_format=torch.channels_last)


def test_bad_arguments(dataset) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        make(dataset, batch_size=0)
    with pytest.raises(ConfigError, match="num_workers"):
        make(dataset, num_workers=-1)


def test_ddp_ranks_partition_the_single_process_order(dataset) -> None:
    single = torch.cat([y for _, y in batches(make(dataset, batch_size=6, transform=None), 1)])
    order = epoch_order(21, shuffle=True, seed=5, epoch=1)
    ranks = [make(dataset, batch_size=3, transform=None, rank=r, world_size=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4  # 21 padded to 22: 11 per rank
    shards = [batches(r, 1) for r in ranks]
    for k in range(3):  # full global steps of 6
        got = torch.cat([shards[0][k][1], shards[1][k][1]])
        assert sorted(got.tolist()) == sorted(single[6 * k : 6 * k + 6].tolist())
    seen = {int(i) for r in range(2) for i in order[ranks[r].sampler.positions % 21]}
    assert seen == set(range(21))
