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
        >>> from finetune_kit.config import RunConfig
        >>> RunConfig.from_dict({"train": {"epochs": 0}})
        Traceback (most recent call last):
        ...
        finetune_kit.errors.ConfigError: train.epochs must be >= 1, got 0.
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
        >>> import torch, finetune_kit as fk
        >>> images, labels = torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 2, 1])
        >>> fk.create_datasets("tensors", train=(images, labels), class_names=["a", "b"])
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetune_kit.errors.DataError: the train tensors: label 2 is outside [0, 2) for 2 classes. ...
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
        >>> import torch, finetune_kit as fk
        >>> lenet = fk.create_model("lenet", num_classes=2, in_channels=1)  # built for 32x32
        >>> lenet(torch.zeros(1, 1, 28, 28))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetune_kit.errors.ShapeError: lenet was built for 32x32 inputs and got 28x28 ...
    """


class DeviceError(FinetuneKitError):
    """The requested device or precision is not available on this machine.

    Example:
        >>> import finetune_kit as fk
        >>> data = fk.create_datasets("fake", train_size=16, test_size=4)
        >>> fk.make_loaders(data, batch_size=4, device="tpu")
        Traceback (most recent call last):
        ...
        finetune_kit.errors.DeviceError: Unknown device 'tpu'. Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.
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
        >>> import tempfile, pathlib, finetune_kit as fk
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "notes.txt").write_text("mine")  # a folder that is not a run
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=16, test_size=4)
        >>> net = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> fk.Trainer(net, data, verbosity=0, output_dir=folder).fit()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetune_kit.errors.OutputDirError: Run directory ... already exists and is not empty; ...
        >>> (folder / "notes.txt").read_text()
        'mine'
    """


class TrainingError(FinetuneKitError):
    """Training cannot go on (non-finite loss, diverged weights).

    Example:
        >>> import tempfile, torch, finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=8,
        ...                           train_size=16, test_size=4)
        >>> class Diverged(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = torch.nn.Linear(64, 2)
        ...     def forward(self, x):
        ...         return self.fc(x.flatten(1)) * float("inf")
        >>> fk.Trainer(Diverged(), data, verbosity=0, output_dir=tempfile.mkdtemp()).fit()
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetune_kit.errors.TrainingError: The mean training loss of epoch 1 is not finite. ...
    """
