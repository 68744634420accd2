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
    "ExportError",
    "FinetuneKitError",
    "OutputDirError",
    "ShapeError",
    "TrainingError",
    "UnknownNameError",
]


class FinetuneKitError(Exception):
    """Root of every error finetune_kit raises on purpose.

    Example:
        >>> try:
        ...     raise DataError("no such file")
        ... except FinetuneKitError as error:
        ...     print(type(error).__name__)
        DataError
    """


class ConfigError(FinetuneKitError, ValueError):
    """A configuration value, key or argument is invalid (wrong type, out of range, misspelt).

    Example:
        >>> isinstance(ConfigError("epochs must be >= 1"), ValueError)
        True
    """


class UnknownNameError(ConfigError):
    """A name looked up in a registry (dataset, model, strategy, ...) is not registered.

    Example:
        >>> from finetune_kit import create_model
        >>> try:
        ...     create_model("resnet81", num_classes=10)
        ... except UnknownNameError as error:
        ...     print(str(error)[:43])
        Unknown model 'resnet81'. Did you mean 'res
    """


class DataError(FinetuneKitError):
    """A dataset could not be found, read or validated (missing file, bad format, bad labels).

    Example:
        >>> issubclass(DataError, FinetuneKitError)
        True
    """


class CheckpointError(FinetuneKitError):
    """A checkpoint or weights file is missing, truncated, unsafe or does not fit the model.

    Example:
        >>> from finetune_kit.storage.checkpoint import load_checkpoint
        >>> try:
        ...     load_checkpoint("missing.ckpt")
        ... except CheckpointError as error:
        ...     print(str(error)[:20])
        Checkpoint not found
    """


class ShapeError(FinetuneKitError, ValueError):
    """Tensor or model shapes do not fit together (channels, classes, image size).

    Example:
        >>> isinstance(ShapeError("3 channels expected"), ValueError)
        True
    """


class DeviceError(FinetuneKitError):
    """The requested device or precision is not available on this machine.

    Example:
        >>> issubclass(DeviceError, FinetuneKitError)
        True
    """


class ExportError(FinetuneKitError):
    """A model could not be exported, or its export does not reproduce it (ONNX, torch.export).

    Example:
        >>> issubclass(ExportError, FinetuneKitError)
        True
    """


class OutputDirError(FinetuneKitError):
    """The run directory cannot be used (exists already, not writable, escapes the run root).

    Example:
        >>> issubclass(OutputDirError, FinetuneKitError)
        True
    """


class TrainingError(FinetuneKitError):
    """Training cannot go on (non-finite loss, diverged weights).

    Example:
        >>> issubclass(TrainingError, FinetuneKitError)
        True
    """
