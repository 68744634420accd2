"""Antialiased bilinear resizing of numpy images with Pillow, as the PyTorch path resizes.

:func:`resize_uint8` resizes a uint8 ``(C, H, W)`` image with Pillow's antialiased bilinear
filter, the filter ``torchvision.transforms.v2.Resize(antialias=True)`` imitates on uint8
(the two agree to within one grey level on a few pixels). :func:`resize_center_crop_array` is
:func:`finetune_kit.data.augment.resize_center_crop` for float32 batches: shorter side to
``size``, then a centre crop (Pillow's float resampling matches PyTorch's to about 1e-5).

Example:
    >>> import numpy as np
    >>> resize_uint8(np.full((1, 8, 8), 7, np.uint8), (4, 6)).shape
    (1, 4, 6)
    >>> resize_center_crop_array(np.zeros((2, 3, 28, 40), np.float32), 32).shape
    (2, 3, 32, 32)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["resize_center_crop_array", "resize_uint8"]


def resize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 ``(C, H, W)`` image to ``size`` ``(H, W)`` (antialiased bilinear).

    Args:
        image: ``(C, H, W)`` uint8.
        size: output ``(H, W)``.

    Returns:
        ``(C, H', W')`` uint8; ``image`` itself when it already has that size.

    Example:
        >>> import numpy as np
        >>> resize_uint8(np.full((3, 5, 5), 200, np.uint8), (2, 2)).tolist()[0]
        [[200, 200], [200, 200]]
    """
    height, width = int(size[0]), int(size[1])
    if image.shape[-2:] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(plane, "L").resize((width, height), Image.Resampling.BILINEAR))
        for plane in image
    ]
    return np.stack(channels)


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One float32 ``(H, W)`` plane resized with Pillow's float ("F") resampling."""
    image = Image.fromarray(np.ascontiguousarray(plane, np.float32), "F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def resize_center_crop_array(x: np.ndarray, size: int) -> np.ndarray:
    """``Resize(size)`` (shorter side, bilinear, antialiased) then ``CenterCrop(size)``.

    Args:
        x: ``(N, C, H, W)`` float32 images.
        size: output side length.

    Returns:
        ``(N, C, size, size)`` float32.

    Example:
        >>> import numpy as np
        >>> resize_center_crop_array(np.ones((1, 1, 4, 8), np.float32), 2)[0, 0].tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    if (new_h, new_w) != (h, w):
        x = np.stack([np.stack([_resize_plane(plane, (new_h, new_w)) for plane in image]) for image in x])
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return np.ascontiguousarray(x[..., top : top + size, left : left + size])
