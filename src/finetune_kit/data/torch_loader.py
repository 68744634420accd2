"""TorchLoader: the standard ``DataLoader`` path, made deterministic and resumable.

Use it for data that does not fit in device memory or needs arbitrary per-sample torchvision
transforms. Workers decode and augment single samples; the main process moves uint8 batches to the
device (pinned memory on CUDA) and normalises them there.

Determinism: the batch sampler draws each epoch's order from a generator seeded with
``(seed, epoch)``; each sample's transform runs under the CPU RNG seeded with
``(seed, epoch, index)`` (inside ``torch.random.fork_rng``, so the global RNG is left untouched),
so batches are identical for any ``num_workers`` and ``iter_epoch(e, k)`` resumes exactly.
Per-sample transforms must draw their randomness from torch's global RNG (torchvision's do).

Example:
    >>> import torch
    >>> from finetune_kit.data import ImageTensorDataset, TorchLoader
    >>> ds = ImageTensorDataset(torch.zeros(5, 1, 4, 4, dtype=torch.uint8),
    ...                         torch.tensor([0, 1, 0, 1, 0]), ["a", "b"])
    >>> loader = TorchLoader(ds, batch_size=2, mean=(0.0,), std=(1.0,), shuffle=True)
    >>> full = [y.tolist() for _, y in loader.iter_epoch(0)]
    >>> resumed = [y.tolist() for _, y in loader.iter_epoch(0, start_batch=2)]
    >>> len(full), resumed == full[2:]
    (3, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from finetune_kit.data.augment import BatchTransform
from finetune_kit.data.sampling import derive_seed, epoch_order, make_generator, rank_positions
from finetune_kit.errors import ConfigError

__all__ = ["TorchLoader"]


class _SeededDataset(Dataset):
    """Reads ``(epoch, index)`` keys and applies the transform under a per-sample seed."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any] | None, seed: int) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        image, target = self.dataset[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(derive_seed("sample", self.seed, epoch, index))
                image = self.transform(image)
        return image, int(target)


class _EpochBatchSampler(Sampler):
    """Yields lists of ``(epoch, index)`` for the epoch and start batch set before iterating."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        rank: int,
        world_size: int,
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last = drop_last
        mode = "drop" if drop_last else ("pad" if shuffle else "uneven")
        self.positions = rank_positions(n, rank=rank, world_size=world_size, mode=mode)
        self.epoch = 0
        self.start_batch = 0

    def __len__(self) -> int:
        m = int(self.positions.numel())
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        indices = order[self.positions % self.n].tolist()
        for b in range(self.start_batch, len(self)):
            yield [(self.epoch, i) for i in indices[b * self.batch_size : (b + 1) * self.batch_size]]


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in each worker from torch's per-worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class TorchLoader:
    """A deterministic, resumable ``torch.utils.data.DataLoader`` over one split.

    Args:
        dataset: a map-style dataset yielding ``(image, label)``; images uint8 ``(C, H, W)``
            tensors after ``transform``.
        batch_size: samples per batch (per process under DDP).
        mean: per-channel normalisation mean (of ``x / 255``), applied on the device.
        std: per-channel normalisation standard deviation.
        device: where batches go.
        transform: per-sample transform (e.g. torchvision ``v2`` ops). If it returns uint8, the
            loader normalises; if it returns float, its output is used as is.
        shuffle: permute every epoch (training).
        seed: the data seed.
        num_workers: worker processes (0: load in the main process).
        drop_last: drop the last incomplete batch.
        channels_last: yield channels-last tensors.
        rank: this process's rank (DDP).
        world_size: number of processes (DDP).
        pin_memory: pin host batches (default: when ``device`` is CUDA).

    Example:
        >>> import torch
        >>> from finetune_kit.data import ImageTensorDataset
        >>> ds = ImageTensorDataset(torch.zeros(4, 3, 2, 2, dtype=torch.uint8),
        ...                         torch.zeros(4, dtype=torch.int64), ["x"])
        >>> x, y = next(TorchLoader(ds, batch_size=4, mean=(0,) * 3, std=(1,) * 3).iter_epoch(0))
        >>> x.dtype, tuple(x.shape)
        (torch.float32, (4, 3, 2, 2))
    """

    kind = "dataloader"

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        transform: Callable[[Any], Any] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"num_workers={num_workers!r} must be an integer >= 0.")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.sampler = _EpochBatchSampler(
            len(dataset),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )
        pin = self.device.type == "cuda" if pin_memory is None else pin_memory
        self.dataloader = DataLoader(
            _SeededDataset(dataset, transform, seed),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin,
            persistent_workers=num_workers > 0,
            worker_init_fn=_seed_worker,
            generator=make_generator("workers", seed),
        )
        self.transform = BatchTransform(mean, std, device=self.device, channels_last=channels_last)
        self.channels_last = channels_last

    @property
    def num_samples(self) -> int:
        """Samples this process reads per epoch (before ``drop_last``)."""
        return int(self.sampler.positions.numel())

    def __len__(self) -> int:
        return len(self.sampler)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            return self.transform(x)
        x = x.to(torch.float32)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of ``epoch`` from batch ``start_batch`` on.

        Args:
            epoch: epoch number (selects the order and each sample's augmentation).
            start_batch: skip this many batches without loading them.

        Yields:
            ``x`` float32 ``(B, C, H, W)`` normalised on the device, ``y`` int64 ``(B,)``.
        """
        self.sampler.epoch = epoch
        self.sampler.start_batch = start_batch
        for x, y in self.dataloader:
            yield self._finish(x), y.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch 0; training loops should call :meth:`iter_epoch` with the epoch number."""
        return self.iter_epoch(0)

    def __repr__(self) -> str:
        return (
            f"TorchLoader({self.num_samples} samples to {self.device}, "
            f"batch_size={self.batch_size}, "
            f"num_workers={self.dataloader.num_workers})"
        )
