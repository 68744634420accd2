"""Paths given by users, checked before the operating system sees them.

A path with a NUL byte cannot name a file on any system; Python refuses it deep inside ``open``
with a bare ``ValueError``. :func:`user_path` refuses it first, with one clear line.

Example:
    >>> user_path("runs/exp1", "output_dir").name
    'exp1'
    >>> user_path("runs/exp\\x001", "output_dir")
    Traceback (most recent call last):
    ...
    finetune_kit.errors.ConfigError: output_dir='runs/exp\\x001' contains a NUL byte, ...
"""

from __future__ import annotations

import os
from pathlib import Path

from finetune_kit.errors import ConfigError

__all__ = ["user_path"]


def user_path(value: object, what: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`, refusing what no file system accepts.

    Args:
        value: a ``str`` or path-like object.
        what: the argument's name, for messages.

    Returns:
        The path.

    Raises:
        ConfigError: not a string or path, empty, or with a NUL byte.
    """
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{what} must be a path (a string), got {type(value).__name__} {value!r}.")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{what} must be a non-empty path, got {value!r}.")
    if "\0" in text:
        raise ConfigError(
            f"{what}={text!r} contains a NUL byte, which no file name can hold. Retype the path."
        )
    return Path(text)
