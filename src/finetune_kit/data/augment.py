"""Batched augmentation on the device: random crop with padding, flip, normalise, resize.

These functions replace torchvision's per-sample ``RandomCrop(size, padding=p)``,
``RandomHorizontalFlip(0.5)``, ``Normalize`` and ``Resize`` + ``CenterCrop`` with a few whole-batch
tensor operations, so a small dataset held on the GPU never waits for Python. The semantics are
torchvision's: crop offsets are uniform over ``0..2p`` in each axis (zero padding), a flip happens
with probability 0.5 after the crop, normalisation is ``(x / 255 - mean) / std``, and a resize
scales the shorter side (bilinear, antialiased) before a centre crop.

The random parameters are drawn up front for every position of an epoch
(:func:`sample_crop_flip`), so they depend only on ``(seed, epoch, position)``.

Example:
    >>> import torch
    >>> x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    >>> crop_flip(x, torch.tensor([0]), torch.tensor([0]), torch.tensor([True]), padding=0)[0, 0, 0]
    tensor([3, 2, 1, 0], dtype=torch.uint8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from finetune_kit.data.sampling import make_generator
from finetune_kit.errors import DataError

__all__ = [
    "BatchTransform",
    "CropFlipParams",
    "crop_flip",
    "eval_transform_from_meta",
    "resize_center_crop",
    "sample_crop_flip",
]


@dataclass(frozen=True)
class CropFlipParams:
    """Per-sample crop offsets (into the padded image) and flip flags, one row per position.

    Example:
        >>> import torch
        >>> t = torch.tensor
        >>> p = CropFlipParams(t([0, 2]), t([1, 1]), t([True, False]))
        >>> p.take(torch.tensor([1])).top.tolist()
        [2]
    """

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor

    def take(self, index: torch.Tensor) -> CropFlipParams:
        """The rows at ``index``."""
        return CropFlipParams(self.top[index], self.left[index], self.flip[index])

    def to(self, device: torch.device | str) -> CropFlipParams:
        """The same parameters on ``device``."""
        return CropFlipParams(self.top.to(device), self.left.to(device), self.flip.to(device))


def sample_crop_flip(n: int, *, padding: int, flip: bool, seed: int, epoch: int) -> CropFlipParams:
    """Draw crop offsets uniform in ``[0, 2 * padding]`` and flips with probability 0.5.

    Each of the three streams (row offsets, column offsets, flips) has its own CPU generator
    seeded from ``(seed, epoch)`` and is drawn in position order, so the parameters of position
    ``p`` do not depend on ``n`` (a longer epoch only appends rows) nor on the device.

    Args:
        n: number of positions.
        padding: the crop padding ``p``; offsets index the ``(H + 2p, W + 2p)`` padded image.
        flip: draw flips (else none are flipped).
        seed: the run's data seed.
        epoch: the epoch number.

    Returns:
        :class:`CropFlipParams` with ``(n,)`` int64 ``top``/``left`` and bool ``flip``.

    Example:
        >>> p = sample_crop_flip(1000, padding=4, flip=True, seed=0, epoch=0)
        >>> int(p.top.min()), int(p.top.max())
        (0, 8)
    """
    top = torch.randint(0, 2 * padding + 1, (n,), generator=make_generator("crop_top", seed, epoch))
    left = torch.randint(0, 2 * padding + 1, (n,), generator=make_generator("crop_left", seed, epoch))
    if flip:
        flips = torch.rand(n, generator=make_generator("flip", seed, epoch)) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool)
    return CropFlipParams(top, left, flips)


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, *, padding: int
) -> torch.Tensor:
    """Crop each image at its own offset from the zero-padded batch, then flip it if asked.

    Two gathers do both: output pixel ``(i, j)`` of image ``b`` is padded pixel
    ``(top[b] + i, left[b] + j)``, or column ``left[b] + W - 1 - j`` when ``flip[b]``.

    Args:
        x: ``(B, C, H, W)`` images (any dtype).
        top: ``(B,)`` row offsets in ``[0, 2 * padding]``.
        left: ``(B,)`` column offsets in ``[0, 2 * padding]``.
        flip: ``(B,)`` bool.
        padding: zero padding on each side before cropping.

    Returns:
        ``(B, C, H, W)``, same dtype and device as ``x``.

    Example:
        >>> import torch
        >>> x = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2)
        >>> crop_flip(x, torch.tensor([2]), torch.tensor([0]), torch.tensor([False]), padding=1)
        tensor([[[[0, 2],
                  [0, 0]]]], dtype=torch.uint8)
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    device = x.device
    rows = top.to(device)[:, None] + torch.arange(h, device=device)  # (B, H)
    rows = rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * padding)
    cropped_rows = torch.gather(padded, 2, rows)  # (B, C, H, W + 2p)
    ar_w = torch.arange(w, device=device)
    cols = left.to(device)[:, None] + torch.where(flip.to(device)[:, None], w - 1 - ar_w, ar_w)
    return torch.gather(cropped_rows, 3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """``Resize(size)`` (shorter side, bilinear, antialiased) then ``CenterCrop(size)``.

    Args:
        x: ``(B, C, H, W)`` float images.
        size: output side length.

    Returns:
        ``(B, C, size, size)``.

    Example:
        >>> import torch
        >>> resize_center_crop(torch.zeros(2, 3, 32, 48), 64).shape
        torch.Size([2, 3, 64, 64])
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return x[..., top : top + size, left : left + size]


class BatchTransform:
    """uint8 batches in, normalised float32 batches out, optionally augmented and resized.

    Args:
        mean: per-channel mean of ``x / 255``.
        std: per-channel standard deviation of ``x / 255``.
        device: where the batches live.
        padding: crop padding for augmentation (used only with ``params``).
        resize: resize + centre-crop to this side length after cropping, or None.
        channels_last: return channels-last tensors.

    Example:
        >>> import torch
        >>> t = BatchTransform((0.5,), (0.5,))
        >>> t(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)).flatten().tolist()
        [-1.0, 1.0]
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        device: torch.device | str = "cpu",
        padding: int = 0,
        resize: int | None = None,
        channels_last: bool = False,
    ) -> None:
        for c, value in enumerate(std):  # normalising divides by it
            if not (math.isfinite(value) and value > 0):
                raise DataError(
                    f"The normalisation std of channel {c} is {value!r}: every training image has "
                    "the same value in that channel (all black? one colour?), so there is nothing "
                    "to learn and normalising would divide by zero. Check that the right images "
                    "were read."
                )
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1).to(device)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1).to(device)
        self.padding = padding
        self.resize = resize
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, params: CropFlipParams | None = None) -> torch.Tensor:
        """Transform a uint8 ``(B, C, H, W)`` batch (with ``params``: crop and flip first)."""
        if params is not None:
            x = crop_flip(x, params.top, params.left, params.flip, padding=self.padding)
        # the order of torchvision's ToDtype(scale=True) + Normalize, for identical results
        out = x.to(torch.float32).mul_(1.0 / 255).sub_(self.mean).div_(self.std)
        if self.resize:
            out = resize_center_crop(out, self.resize)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return out.contiguous(memory_format=fmt)


def eval_transform_from_meta(meta: Mapping[str, Any], device: torch.device | str = "cpu") -> BatchTransform:
    """The evaluation preprocessing of a trained model, rebuilt from ``DataBundle.meta()``.

    Prediction needs no dataset: the checkpoint's data metadata says how inputs were resized and
    normalised. Feed it images from :func:`~finetune_kit.data.load_images` (stored size).

    Args:
        meta: the dict from :meth:`DataBundle.meta` (``mean``, ``std``, ``image_size``,
            ``input_size``).
        device: where the batches will be.

    Returns:
        A callable mapping uint8 ``(N, C, H, W)`` to normalised float32 ``(N, C, h, w)``.

    Example:
        >>> import torch
        >>> meta = {"mean": [0.5], "std": [0.25], "image_size": [28, 28], "input_size": [28, 28]}
        >>> eval_transform_from_meta(meta)(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)).max()
        tensor(2.)
    """
    input_size = tuple(meta["input_size"])
    resize = int(input_size[0]) if input_size != tuple(meta["image_size"]) else None
    return BatchTransform(meta["mean"], meta["std"], device=device, resize=resize)
