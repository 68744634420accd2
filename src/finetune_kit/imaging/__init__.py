"""Image files as numpy arrays: decoding, channel conversion and resizing, without PyTorch.

Both the training data (:mod:`finetune_kit.data`) and the torch-free ONNX prediction path
(:mod:`finetune_kit.inference`) decode image files here, so a PNG becomes the same pixels
whichever runs it. Only Pillow and numpy are used.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> path = tempfile.mkdtemp() + "/x.png"
    >>> Image.new("L", (7, 5), 200).save(path)
    >>> resize_uint8(decode_array(path, in_channels=3), (4, 4)).shape
    (3, 4, 4)
"""

from __future__ import annotations

from finetune_kit.imaging.decode import IMAGE_SUFFIXES, check_image_files, decode_array
from finetune_kit.imaging.resize import resize_center_crop_array, resize_uint8

__all__ = ["IMAGE_SUFFIXES", "check_image_files", "decode_array", "resize_center_crop_array", "resize_uint8"]
