"""The exceptions finetune_kit raises for bad input and failed operations.

Every user-facing error is a :class:`FinetuneKitError`, so one ``except`` clause catches them
all, and the CLI turns any of them into one line on stderr and exit status 2. Each message says
what was wrong, what was expected, and how to fix it.

Example:
    >>> from finetune_kit.errors import ConfigError, FinetuneKitError
    >>> issubclass(ConfigError, FinetuneKitError)
    True
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "FinetuneKitError",
    "OutputDirError",
    "ShapeError",
    "TrainingError",
    "UnknownNameError",
]


class FinetuneKitError(Exception):
    """Root of every error finetune_kit raises on purpose."""


class ConfigError(FinetuneKitError, ValueError):
    """A configuration value, key or argument is invalid (wrong type, out of range, misspelt)."""


class UnknownNameError(ConfigError):
    """A name looked up in a registry (dataset, model, strategy, ...) is not registered."""


class DataError(FinetuneKitError):
    """A dataset could not be found, read or validated (missing file, bad format, bad labels)."""


class CheckpointError(FinetuneKitError):
    """A checkpoint or weights file is missing, truncated, unsafe or does not fit the model."""


class ShapeError(FinetuneKitError, ValueError):
    """Tensor or model shapes do not fit together (channels, classes, image size)."""


class DeviceError(FinetuneKitError):
    """The requested device or precision is not available on this machine."""


class OutputDirError(FinetuneKitError):
    """The run directory cannot be used (exists already, not writable, escapes the run root)."""


class TrainingError(FinetuneKitError):
    """Training cannot go on (non-finite loss, diverged weights)."""
