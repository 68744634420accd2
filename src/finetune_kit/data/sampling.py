"""Seeds, epoch orders and rank shards: every random choice a loader makes, as a pure function.

Exact resume and multi-process training need the order of an epoch and every augmentation to
depend only on ``(seed, epoch, position)`` -- never on the global RNG or on how many batches were
drawn before. This module derives independent seeds from such tuples and builds the per-rank
sequence of sample indices for one epoch.

Example:
    >>> from finetune_kit.data.sampling import derive_seed, epoch_order
    >>> derive_seed("order", 0, 1) == derive_seed("order", 0, 1)
    True
    >>> epoch_order(5, shuffle=False, seed=0, epoch=0).tolist()
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

import torch

from finetune_kit.errors import ConfigError

__all__ = ["derive_seed", "epoch_order", "make_generator", "rank_positions"]

ShardMode = Literal["pad", "drop", "uneven"]


def derive_seed(*parts: int | str) -> int:
    """Hash a tuple of ints/strings into a 63-bit seed, stable across runs and platforms.

    Args:
        parts: what the seed depends on, e.g. ``("order", seed, epoch)``.

    Returns:
        An integer in ``[0, 2**63)``; different tuples give unrelated seeds.

    Example:
        >>> derive_seed("a", 1) != derive_seed("a", 2)
        True
    """
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def make_generator(*parts: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` of ``parts``.

    Example:
        >>> g = make_generator("demo", 0)
        >>> torch.randint(0, 10, (3,), generator=g).tolist() == torch.randint(
        ...     0, 10, (3,), generator=make_generator("demo", 0)).tolist()
        True
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*parts))
    return generator


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> torch.Tensor:
    """The global order of the ``n`` samples in one epoch (a CPU LongTensor).

    Args:
        n: number of samples.
        shuffle: permute (training) or keep ``0..n-1`` (evaluation).
        seed: the run's data seed.
        epoch: the epoch number; each epoch gets its own permutation.

    Returns:
        ``(n,)`` int64 tensor: a permutation drawn from a generator seeded with
        ``(seed, epoch)``, or ``arange(n)``.

    Example:
        >>> a = epoch_order(10, shuffle=True, seed=0, epoch=3)
        >>> sorted(a.tolist()) == list(range(10))
        True
    """
    if not shuffle:
        return torch.arange(n, dtype=torch.int64)
    return torch.randperm(n, generator=make_generator("order", seed, epoch), dtype=torch.int64)


def rank_positions(n: int, *, rank: int = 0, world_size: int = 1, mode: ShardMode = "pad") -> torch.Tensor:
    """Which positions of the global epoch order one rank reads, in order.

    Rank ``r`` reads positions ``r, r + W, r + 2W, ...`` (as torch's ``DistributedSampler``), so
    batch ``k`` of every rank together holds the same samples as batch ``k`` of one process with a
    ``W`` times larger batch.

    Args:
        n: number of samples in the epoch.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of processes.
        mode: ``"pad"`` wraps around so all ranks read ``ceil(n / W)`` positions (training);
            ``"drop"`` drops the tail so all read ``n // W``; ``"uneven"`` neither (evaluation:
            every sample exactly once, ranks may differ by one).

    Returns:
        ``(m,)`` int64 positions in ``[0, padded length)``; position ``p`` holds sample
        ``order[p % n]``.

    Raises:
        ConfigError: rank/world_size out of range or an unknown mode.

    Example:
        >>> rank_positions(5, rank=1, world_size=2).tolist()
        [1, 3, 5]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(
            f"rank={rank}, world_size={world_size} is not a valid process group: "
            "expected world_size >= 1 and 0 <= rank < world_size."
        )
    if mode == "pad":
        total = math.ceil(n / world_size) * world_size
    elif mode == "drop":
        total = (n // world_size) * world_size
    elif mode == "uneven":
        total = n
    else:
        raise ConfigError(f"Unknown shard mode {mode!r}: expected 'pad', 'drop' or 'uneven'.")
    return torch.arange(rank, total, world_size, dtype=torch.int64)
