"""Decoding image files (PNG, JPEG) into uint8 tensors of a given channel count and size.

Used by prediction (``load_images``: paths -> one batch) and by the image-folder dataset.
Decoding is :func:`finetune_kit.imaging.decode_array` (Pillow; alpha dropped, grayscale <-> RGB
converted as asked with ITU-R 601-2 luma for RGB -> gray, 16-bit images scaled to 8 bits);
resizing uses antialiased bilinear interpolation on uint8 (``transforms.v2.Resize``).

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> path = tempfile.mkdtemp() + "/x.png"
    >>> Image.new("L", (7, 5), 200).save(path)
    >>> load_images([path], in_channels=3, image_size=(4, 4)).shape
    torch.Size([1, 3, 4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from finetune_kit.errors import ConfigError, DataError
from finetune_kit.imaging import IMAGE_SUFFIXES, decode_array
from finetune_kit.storage.metadata import MAX_IMAGE_SIDE
from finetune_kit.storage.paths import user_path

__all__ = ["IMAGE_SUFFIXES", "check_image_size", "check_workers", "decode_file", "load_images"]


def check_image_size(value: object, what: str = "image_size") -> tuple[int, int]:
    """An image size given as a side length or ``(H, W)``, checked: ``(H, W)`` in pixels.

    Args:
        value: an int, or a pair of ints.
        what: the argument's name, for messages.

    Returns:
        ``(H, W)``.

    Raises:
        ConfigError: not an int or a pair of ints, or a side outside ``[1, MAX_IMAGE_SIDE]``.

    Example:
        >>> check_image_size(32), check_image_size([24, 32])
        ((32, 32), (24, 32))
    """
    pair = (value, value) if isinstance(value, int) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        pair = None
    ok = pair is not None and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_IMAGE_SIDE for v in pair
    )
    if not ok:
        raise ConfigError(
            f"{what}={value!r}: expected a side length or a pair (H, W) of integers in "
            f"[1, {MAX_IMAGE_SIDE}] pixels, e.g. {what}=32 or {what}=(224, 224)."
        )
    return (int(pair[0]), int(pair[1]))


def check_workers(value: object, what: str = "num_workers") -> int:
    """A number of decoding threads, checked: an integer >= 1.

    Example:
        >>> check_workers(4)
        4
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what}={value!r}: expected an integer >= 1 (threads that decode images).")
    return value


def decode_file(path: str | Path, *, in_channels: int | None = None) -> torch.Tensor:
    """Decode one PNG/JPEG file to uint8 ``(C, H, W)`` (:func:`finetune_kit.imaging.decode_array`).

    Args:
        path: the image file.
        in_channels: 1 (grayscale) or 3 (RGB) to convert; None keeps grayscale images
            grayscale (1 channel) and makes every other image RGB (3 channels).

    Returns:
        The decoded image, alpha dropped.

    Raises:
        ConfigError: ``in_channels`` is not None, 1 or 3.
        DataError: the file is missing, unreadable or not a decodable image.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = tempfile.mkdtemp() + "/a.png"
        >>> Image.new("RGBA", (3, 2)).save(p)
        >>> decode_file(p).shape, decode_file(p, in_channels=1).shape
        (torch.Size([3, 2, 3]), torch.Size([1, 2, 3]))
    """
    path = user_path(path, "image")
    return torch.from_numpy(decode_array(path, in_channels=in_channels))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), antialias=True)


def load_images(
    paths: Sequence[str | Path],
    *,
    in_channels: int,
    image_size: int | tuple[int, int],
    num_workers: int = 4,
) -> torch.Tensor:
    """Decode image files into one uint8 batch of the given channels and size.

    Args:
        paths: PNG or JPEG files.
        in_channels: 1 (grayscale) or 3 (RGB); images are converted as needed.
        image_size: output (H, W) (an int for square); images are resized (not cropped) to it.
        num_workers: decoding threads.

    Returns:
        ``(N, in_channels, H, W)`` uint8.

    Raises:
        DataError: a missing or undecodable file (named in the message), or no paths.
        ConfigError: a bad ``image_size`` or ``num_workers``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = tempfile.mkdtemp() + "/rgb.png"
        >>> Image.new("RGB", (8, 8)).save(p)
        >>> load_images([p, p], in_channels=1, image_size=8).shape
        torch.Size([2, 1, 8, 8])
    """
    size = check_image_size(image_size)
    check_workers(num_workers)
    if not paths:
        raise DataError("load_images got no paths; pass at least one image file.")

    def one(path: str | Path) -> torch.Tensor:
        return _resize(decode_file(path, in_channels=in_channels), size)

    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        images = list(pool.map(one, paths))
    return torch.stack(images)
