"""DeviceLoader: a whole split kept on the device as uint8, batched and augmented there.

This is the fast path for datasets that fit in device memory (MNIST, Fashion-MNIST, CIFAR, small
image folders): the split is copied to the device once, each epoch is an index permutation, and
each batch is one gather plus a few whole-batch operations (crop with padding, flip, normalise,
optional resize, channels-last). No Python runs per sample and no worker processes are needed.

Determinism: the epoch order comes from a generator seeded with ``(seed, epoch)`` and the crop
offsets and flips of every position from generators seeded with ``(seed, epoch)`` (drawn for all
positions at the start of the epoch, on the CPU, then copied over), so a batch depends only on
``(seed, epoch, batch index)`` -- ``iter_epoch(e, k)`` resumes exactly, and results are the same
on every device.

Example:
    >>> import torch
    >>> from finetune_kit.data import DeviceLoader, ImageTensorDataset
    >>> ds = ImageTensorDataset(torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8),
    ...                         torch.arange(10) % 2, ["a", "b"])
    >>> loader = DeviceLoader(ds, batch_size=4, mean=(0.5,), std=(0.5,), shuffle=True,
    ...                       crop_padding=1, hflip=True, seed=0)
    >>> len(loader), [tuple(x.shape) for x, _ in loader.iter_epoch(0)]
    (3, [(4, 1, 8, 8), (4, 1, 8, 8), (2, 1, 8, 8)])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from finetune_kit.data.augment import BatchTransform, CropFlipParams, sample_crop_flip
from finetune_kit.data.sampling import epoch_order, rank_positions
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import ConfigError

__all__ = ["DeviceLoader"]


class DeviceLoader:
    """Batches of one :class:`ImageTensorDataset` held on ``device``.

    Args:
        dataset: the split.
        batch_size: samples per batch (per process under DDP).
        device: where the images live and batches are made.
        mean: per-channel normalisation mean (of ``x / 255``).
        std: per-channel normalisation standard deviation.
        shuffle: permute every epoch (training); False keeps the stored order.
        crop_padding: random crop of the stored size after zero padding (0: no crop).
        hflip: random horizontal flip with probability 0.5.
        resize: resize (shorter side) and centre-crop to this size after augmentation.
        seed: the data seed.
        drop_last: drop the last incomplete batch.
        channels_last: yield channels-last tensors.
        rank: this process's rank (DDP).
        world_size: number of processes (DDP); each rank reads every ``world_size``-th
            position of the global order (padded by wrapping when shuffling).

    Example:
        >>> import torch
        >>> ds = ImageTensorDataset(torch.zeros(6, 3, 4, 4, dtype=torch.uint8),
        ...                         torch.zeros(6, dtype=torch.int64), ["only"])
        >>> ev = DeviceLoader(ds, batch_size=4, mean=(0, 0, 0), std=(1, 1, 1))
        >>> ev.num_samples, len(ev), ev.kind
        (6, 2, 'device')
    """

    kind = "device"

    def __init__(
        self,
        dataset: ImageTensorDataset,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        crop_padding: int = 0,
        hflip: bool = False,
        resize: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.targets = dataset.targets.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.seed = seed
        self.drop_last = drop_last
        self.world_size = world_size
        mode = "drop" if drop_last else ("pad" if shuffle else "uneven")
        self._positions = rank_positions(len(dataset), rank=rank, world_size=world_size, mode=mode)
        self.transform = BatchTransform(
            mean,
            std,
            device=self.device,
            padding=crop_padding,
            resize=resize,
            channels_last=channels_last,
        )

    @property
    def num_samples(self) -> int:
        """Samples this process reads per epoch (before ``drop_last``)."""
        return int(self._positions.numel())

    @property
    def augments(self) -> bool:
        """Whether batches are randomly cropped or flipped."""
        return self.crop_padding > 0 or self.hflip

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor, CropFlipParams | None]:
        """Sample indices and augmentation parameters for this rank's positions, on the device."""
        n = int(self.images.shape[0])
        order = epoch_order(n, shuffle=self.shuffle, seed=self.seed, epoch=epoch)
        indices = order[self._positions % n].to(self.device, non_blocking=True)
        if not self.augments:
            return indices, None
        total = math.ceil(n / self.world_size) * self.world_size
        params = sample_crop_flip(
            total, padding=self.crop_padding, flip=self.hflip, seed=self.seed, epoch=epoch
        )
        return indices, params.take(self._positions).to(self.device)

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of ``epoch`` from batch ``start_batch`` on.

        Args:
            epoch: epoch number (selects the order and augmentation).
            start_batch: skip this many batches (exact mid-epoch resume).

        Yields:
            ``x`` float32 ``(B, C, H, W)`` normalised (augmented when training), ``y`` int64
            ``(B,)``, both on the device.
        """
        indices, params = self._epoch_plan(epoch)
        for b in range(start_batch, len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            index = indices[rows]
            batch_params = (
                None
                if params is None
                else CropFlipParams(params.top[rows], params.left[rows], params.flip[rows])
            )
            x = self.transform(self.images.index_select(0, index), batch_params)
            yield x, self.targets.index_select(0, index)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch 0; training loops should call :meth:`iter_epoch` with the epoch number."""
        return self.iter_epoch(0)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader({self.num_samples} samples on {self.device}, "
            f"batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, crop_padding={self.crop_padding}, hflip={self.hflip})"
        )
