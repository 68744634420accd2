"""``make_loaders``: one call, two loader paths, the choice explained.

* The **device** path (:class:`DeviceLoader`) keeps each split on the device as uint8 and augments
  whole batches there. It is chosen when every split is an :class:`ImageTensorDataset`, the preset
  has a device implementation, no custom per-sample transform was given, and all splits together
  fit the memory budget: by default ``min(25% of free device memory, 8 GiB)`` (on the CPU: 25% of
  available RAM, at most 8 GiB -- there the images are not even copied, and the device path is
  still the faster one because it runs no Python per sample).
* The **dataloader** path (:class:`TorchLoader`) is torch's ``DataLoader`` with workers, pinned
  memory, persistent workers and per-sample seeding, for everything else.

``loader="device"`` or ``"dataloader"`` forces a path; the returned :class:`Loaders` says which
was used and why (``reason``), for the log.

Example:
    >>> from finetune_kit.data import create_datasets, make_loaders
    >>> data = create_datasets("fake", train_size=64, test_size=16, val_fraction=0.25)
    >>> loaders = make_loaders(data, batch_size=16)
    >>> loaders.kind, len(loaders.train), len(loaders.val), len(loaders.test)
    ('device', 3, 1, 1)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from finetune_kit.data.bundle import DataBundle
from finetune_kit.data.device_loader import DeviceLoader
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.data.torch_loader import TorchLoader
from finetune_kit.errors import ConfigError
from finetune_kit.runtime.device import resolve_device

__all__ = ["Loaders", "default_memory_budget", "make_loaders"]

log = logging.getLogger("finetune_kit.data")

GiB = 1024**3
MAX_DEFAULT_BUDGET = 8 * GiB

AnyLoader = DeviceLoader | TorchLoader


@dataclass
class Loaders:
    """The loaders of one bundle.

    Attributes:
        train: training loader (shuffled, augmented).
        val: validation loader, or None when the bundle has no validation split.
        test: test loader, or None when the bundle has no test split.
        kind: ``"device"`` or ``"dataloader"``.
        reason: why that path was chosen (one line for the log).

    Example:
        >>> from finetune_kit.data import create_datasets
        >>> data = create_datasets("fake", train_size=20, test_size=4)
        >>> loaders = make_loaders(data, batch_size=4)
        >>> loaders.kind, loaders.train.kind
        ('device', 'device')
    """

    train: AnyLoader
    val: AnyLoader | None
    test: AnyLoader | None
    kind: Literal["device", "dataloader"]
    reason: str


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def default_memory_budget(device: torch.device | str) -> int:
    """Bytes of split data the device path may hold: ``min(25% of free memory, 8 GiB)``.

    Example:
        >>> default_memory_budget("cpu") <= 8 * 1024**3
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
    elif device.type == "cpu":
        free = _available_ram()
    else:
        free = 8 * GiB
    return int(min(free // 4, MAX_DEFAULT_BUDGET))


def _splits(bundle: DataBundle) -> list[Any]:
    return [s for s in (bundle.train, bundle.val, bundle.test) if s is not None]


def _data_bytes(bundle: DataBundle) -> int:
    return sum(s.images.numel() + 8 * s.targets.numel() for s in _splits(bundle))


def _device_blocker(bundle: DataBundle, custom: bool) -> str | None:
    """Why the device path cannot be used, or None."""
    if custom:
        return "custom per-sample transforms need the DataLoader path"
    if not bundle.preset.device_capable:
        return f"preset {bundle.preset.name!r} has no device implementation"
    for split in _splits(bundle):
        if not isinstance(split, ImageTensorDataset):
            return f"a split is a {type(split).__name__}, not an ImageTensorDataset held in memory"
    return None


def _choose(
    bundle: DataBundle, loader: str, device: torch.device, budget: int | None, custom: bool
) -> tuple[str, str]:
    if loader not in ("auto", "device", "dataloader"):
        raise ConfigError(f"loader={loader!r} is not valid: use 'auto', 'device' or 'dataloader'.")
    if loader == "dataloader":
        return "dataloader", "dataloader: forced by loader='dataloader'"
    blocker = _device_blocker(bundle, custom)
    if loader == "device":
        if blocker:
            raise ConfigError(f"loader='device' is impossible here: {blocker}. Use loader='dataloader'.")
        return "device", f"device: forced by loader='device' ({device})"
    if blocker:
        return "dataloader", f"dataloader: {blocker}"
    size = _data_bytes(bundle)
    budget = default_memory_budget(device) if budget is None else budget
    if size > budget:
        return "dataloader", (
            f"dataloader: the splits need {size / 2**20:.1f} MiB, over the "
            f"{budget / 2**20:.0f} MiB device memory budget"
        )
    return "device", (
        f"device: the splits ({size / 2**20:.1f} MiB uint8) fit the "
        f"{budget / 2**20:.0f} MiB budget on {device} and preset "
        f"{bundle.preset.name!r} runs there"
    )


def _device_loaders(
    bundle: DataBundle,
    common: dict[str, Any],
    train_bs: int,
    eval_bs: int,
    augment: bool,
    drop_last: bool,
) -> tuple[AnyLoader, ...]:
    preset = bundle.preset
    resize = preset.resize
    train = DeviceLoader(
        bundle.train,
        batch_size=train_bs,
        shuffle=True,
        drop_last=drop_last,
        resize=resize,
        crop_padding=preset.padding_for(bundle.image_size) if augment else 0,
        hflip=preset.hflip and augment,
        **common,
    )
    evals = tuple(
        None if split is None else DeviceLoader(split, batch_size=eval_bs, resize=resize, **common)
        for split in (bundle.val, bundle.test)
    )
    return (train, *evals)


def _torch_loaders(
    bundle: DataBundle,
    common: dict[str, Any],
    train_bs: int,
    eval_bs: int,
    transforms: tuple[Callable | None, Callable | None],
    drop_last: bool,
    num_workers: int,
) -> tuple[AnyLoader, ...]:
    train_tf, eval_tf = transforms
    train = TorchLoader(
        bundle.train,
        batch_size=train_bs,
        shuffle=True,
        drop_last=drop_last,
        transform=train_tf,
        num_workers=num_workers,
        **common,
    )
    evals = tuple(
        None
        if split is None
        else TorchLoader(split, batch_size=eval_bs, transform=eval_tf, num_workers=num_workers, **common)
        for split in (bundle.val, bundle.test)
    )
    return (train, *evals)


def make_loaders(
    bundle: DataBundle,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    loader: str = "auto",
    augment: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    eval_batch_size: int | None = None,
    channels_last: bool = False,
    memory_budget_bytes: int | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    train_transform: Callable[[Any], Any] | None = None,
    eval_transform: Callable[[Any], Any] | None = None,
) -> Loaders:
    """Build the train/val/test loaders of ``bundle`` on the device or DataLoader path.

    Every loader yields ``(x, y)``: ``x`` float32 ``(B, C, H, W)`` normalised with
    ``bundle.mean``/``bundle.std`` (training batches augmented by the bundle's preset), ``y``
    int64, both on ``device``. Order and augmentation depend only on ``(seed, epoch, position)``.

    Args:
        bundle: from :func:`~finetune_kit.data.create_datasets`.
        batch_size: training batch size (per process under DDP).
        device: where batches are delivered: a ``torch.device`` or a name (``"auto"``, ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, ``"mps"``).
        loader: ``"auto"``, ``"device"`` or ``"dataloader"``.
        augment: apply the preset's training augmentation (False: training batches get the
            evaluation preprocessing, still shuffled).
        seed: the data seed (order and augmentation).
        num_workers: DataLoader worker processes (DataLoader path only).
        eval_batch_size: batch size of val/test (default ``batch_size``).
        channels_last: deliver channels-last tensors.
        memory_budget_bytes: device path budget (default :func:`default_memory_budget`).
        drop_last: drop the last incomplete training batch.
        rank: this process's rank (DDP).
        world_size: number of processes (DDP); ranks read disjoint strided shards of each
            epoch's global order.
        train_transform: custom per-sample training transform (forces the DataLoader path).
        eval_transform: custom per-sample evaluation transform (forces the DataLoader path).

    Returns:
        :class:`Loaders` with ``kind`` and ``reason``.

    Raises:
        ConfigError: a bad argument, or ``loader="device"`` where it is impossible (the message
            says why).
        DeviceError: ``device`` names a device this machine does not have.

    Example:
        >>> from finetune_kit.data import create_datasets
        >>> data = create_datasets("fake", train_size=32, test_size=8, val_fraction=0)
        >>> loaders = make_loaders(data, batch_size=8, loader="dataloader")
        >>> loaders.val is None, loaders.kind, loaders.reason
        (True, 'dataloader', "dataloader: forced by loader='dataloader'")
    """
    if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
        raise ConfigError(f"eval_batch_size={eval_batch_size!r} must be a positive integer or None.")
    # a name goes through resolve_device: "auto" works, and a missing GPU is a DeviceError
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    custom = train_transform is not None or eval_transform is not None
    kind, reason = _choose(bundle, loader, device, memory_budget_bytes, custom)
    log.info("data loader path: %s", reason)
    common = dict(
        mean=bundle.mean,
        std=bundle.std,
        device=device,
        seed=seed,
        channels_last=channels_last,
        rank=rank,
        world_size=world_size,
    )
    eval_bs = eval_batch_size or batch_size
    if kind == "device":
        made = _device_loaders(bundle, common, batch_size, eval_bs, augment, drop_last)
    else:
        preset = bundle.preset
        train_tf = train_transform or (
            preset.train_transform(bundle.image_size) if augment else preset.eval_transform(bundle.image_size)
        )
        eval_tf = eval_transform or preset.eval_transform(bundle.image_size)
        made = _torch_loaders(
            bundle, common, batch_size, eval_bs, (train_tf, eval_tf), drop_last, num_workers
        )
    return Loaders(train=made[0], val=made[1], test=made[2], kind=kind, reason=reason)
