"""The optional packages of deployment (``onnx``, ``onnxscript``, ``onnxruntime``), imported on use.

They come with the ``deploy`` extra. Nothing imports them until an ONNX file is written or
read, and a missing one is a :class:`~finetune_kit.errors.ConfigError` of one line saying how
to install it.

Example:
    >>> require("json", "Reading JSON").__name__
    'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from finetune_kit.errors import ConfigError

__all__ = ["INSTALL", "require"]

INSTALL = 'pip install "finetune-kit[deploy]"'


def require(name: str, purpose: str) -> ModuleType:
    """Import an optional package, or say in one line how to install it.

    Args:
        name: the module, e.g. ``"onnxruntime"``.
        purpose: what needs it, starting a sentence, e.g. ``"Predicting with an ONNX model"``.

    Returns:
        The imported module.

    Raises:
        ConfigError: the package is not installed.

    Example:
        >>> require("no_such_package_xyz", "This")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.ConfigError: This needs the no_such_package_xyz package, ...
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{purpose} needs the {name} package, which is not installed: {INSTALL}") from None
