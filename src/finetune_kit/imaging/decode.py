"""Decoding one PNG or JPEG file into a uint8 ``(C, H, W)`` numpy array of 1 or 3 channels.

Decoding uses Pillow; alpha is dropped, grayscale <-> RGB converted as asked (ITU-R 601-2 luma
for RGB -> gray), and 16-bit images scaled to 8 bits.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> path = tempfile.mkdtemp() + "/x.png"
    >>> Image.new("RGBA", (3, 2), (10, 20, 30, 0)).save(path)
    >>> decode_array(path)[:, 0, 0].tolist(), decode_array(path, in_channels=1).shape
    ([10, 20, 30], (1, 2, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from finetune_kit.errors import ConfigError, DataError

__all__ = ["IMAGE_SUFFIXES", "check_image_files", "decode_array"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _to_mode(image: Image.Image, in_channels: int | None) -> Image.Image:
    """Convert a decoded Pillow image to "L" or "RGB"."""
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit gray: keep the top 8 bits
        wide = np.asarray(image).astype(np.float64)
        scale = 256.0 if image.mode.startswith("I;16") or wide.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(wide / scale, 0, 255).astype(np.uint8), "L")
    if in_channels is None:
        in_channels = 1 if image.mode in _GRAY_MODES else 3
    return image.convert("L" if in_channels == 1 else "RGB")


def decode_array(path: str | Path, *, in_channels: int | None = None) -> np.ndarray:
    """Decode one PNG/JPEG file to a uint8 ``(C, H, W)`` array.

    Args:
        path: the image file.
        in_channels: 1 (grayscale) or 3 (RGB) to convert; None keeps grayscale images
            grayscale (1 channel) and makes every other image RGB (3 channels).

    Returns:
        The decoded image (a writable C-contiguous array), alpha dropped.

    Raises:
        ConfigError: ``in_channels`` is not None, 1 or 3.
        DataError: the file is missing, unreadable or not a decodable image.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = tempfile.mkdtemp() + "/a.png"
        >>> Image.new("L", (3, 2), 9).save(p)
        >>> decode_array(p, in_channels=3).shape, decode_array(p).dtype
        ((3, 2, 3), dtype('uint8'))
    """
    path = Path(path)
    if in_channels not in (None, 1, 3):
        raise ConfigError(f"in_channels={in_channels!r}: expected 1 (grayscale) or 3 (RGB).")
    if not path.is_file():
        raise DataError(f"Image file {path} does not exist.")
    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(_to_mode(image, in_channels))
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{path} is refused: {exc.args[0].split(',')[0]}, a possible decompression bomb "
            "(a small file that decodes to gigabytes). Shrink the image, or remove it."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"{path} is not a readable PNG or JPEG image ({exc}). Replace or remove the file."
        ) from exc
    if array.ndim == 2:
        array = array[:, :, None]
    return array.transpose(2, 0, 1).copy()  # a writable, C-contiguous copy


def check_image_files(paths: Sequence[str | Path]) -> None:
    """Fail before any work when an image file is missing.

    Args:
        paths: the image files.

    Raises:
        DataError: no paths, or a path that is not a file (named).

    Example:
        >>> check_image_files(["missing.png"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.DataError: Image file missing.png does not exist ...
    """
    if not paths:
        raise DataError("No images were given; pass at least one PNG or JPEG file.")
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"Image file {path} does not exist (or is not a file). Check the path.")
