"""Seeds, epoch orders and DDP shards."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.data.sampling import derive_seed, epoch_order, make_generator, rank_positions
from finetune_kit.errors import ConfigError


def test_derive_seed_stable_and_distinct() -> None:
    assert derive_seed("order", 0, 1) == derive_seed("order", 0, 1)
    assert len({derive_seed("order", s, e) for s in range(10) for e in range(10)}) == 100
    assert derive_seed(1, 2) != derive_seed("1", 2) and 0 <= derive_seed(-5) < 2**63


def test_epoch_order_is_a_pure_function() -> None:
    torch.manual_seed(123)
    a = epoch_order(50, shuffle=True, seed=7, epoch=2)
    torch.rand(100)
    b = epoch_order(50, shuffle=True, seed=7, epoch=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, epoch_order(50, shuffle=True, seed=7, epoch=3))
    assert torch.equal(epoch_order(5, shuffle=False, seed=7, epoch=2), torch.arange(5))


def test_make_generator_device_cpu() -> None:
    g = make_generator("x", 1)
    assert g.device.type == "cpu"


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_rank_positions_pad_covers_everything(world_size: int) -> None:
    n = 10
    shards = [rank_positions(n, rank=r, world_size=world_size, mode="pad") for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1  # equal length: no DDP hang
    covered = torch.cat(shards) % n
    assert set(covered.tolist()) == set(range(n))


def test_rank_positions_uneven_and_drop() -> None:
    shards = [rank_positions(10, rank=r, world_size=3, mode="uneven") for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(10))
    drop = [rank_positions(10, rank=r, world_size=3, mode="drop") for r in range(3)]
    assert [len(s) for s in drop] == [3, 3, 3]


def test_rank_positions_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="rank=2, world_size=2"):
        rank_positions(10, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="shard mode"):
        rank_positions(10, mode="wrap")  # type: ignore[arg-type]
