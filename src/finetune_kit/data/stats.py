"""Per-channel mean and standard deviation of uint8 images, exact in float64.

The statistics are computed from a per-channel histogram of the 256 byte values, so they are exact
(no float32 accumulation error) and take one pass over the data.

Example:
    >>> import torch
    >>> x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    >>> channel_stats(x)
    ((0.5,), (0.5,))
"""

from __future__ import annotations

import torch

__all__ = ["channel_stats"]

_CHUNK = 8192


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and population standard deviation per channel of ``images / 255``.

    Args:
        images: ``(N, C, H, W)`` uint8.

    Returns:
        ``(mean, std)``, each a tuple of ``C`` floats.

    Example:
        >>> import torch
        >>> m, s = channel_stats(torch.full((2, 3, 4, 4), 51, dtype=torch.uint8))
        >>> [round(v, 6) for v in m], s
        ([0.2, 0.2, 0.2], (0.0, 0.0, 0.0))
    """
    channels = images.shape[1]
    hist = torch.zeros(channels, 256, dtype=torch.int64)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = images[start : start + _CHUNK].to("cpu")
        for c in range(channels):
            hist[c] += torch.bincount(chunk[:, c].reshape(-1).to(torch.int64), minlength=256)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = hist.sum(dim=1).to(torch.float64)
    mean = (hist * values).sum(dim=1) / total
    var = (hist * values**2).sum(dim=1) / total - mean**2
    std = var.clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
