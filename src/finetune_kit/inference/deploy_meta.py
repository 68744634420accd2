"""What a deployment artifact says about its model: :class:`DeployMeta`, written and read back.

An ONNX file carries it in its ``metadata_props`` and a ``.pt2`` program in an extra file, as
string entries whose values are JSON: ``class_names``, ``in_channels``, ``image_size``,
``input_size``, ``mean``, ``std``, ``input_format`` (``"float32"``: the graph takes normalised
float32 input; ``"uint8"``: it takes raw pixels and normalises them itself), ``outputs``,
``model_name``, ``source`` (the run or checkpoint it came from), ``weights`` (``"ema"`` or
``"model"``) and ``finetune_kit_version``, beside the plain strings ``finetune_kit_format``
(``"finetune_kit.deploy"``) and ``finetune_kit_format_version`` (``"1"``). Other runtimes can
read them without finetune_kit.

A file is untrusted input: :meth:`DeployMeta.from_properties` checks every entry's type and
range (a class count over 100,000, a zero or negative std, sizes over 8192 pixels are refused)
and raises :class:`~finetune_kit.errors.CheckpointError` naming the entry. This module does not
import PyTorch.

Example:
    >>> meta = DeployMeta(class_names=("cat", "dog"), in_channels=1, image_size=(28, 28),
    ...                   input_size=(28, 28), mean=(0.5,), std=(0.25,))
    >>> props = meta.to_properties()
    >>> props["class_names"], props["finetune_kit_format"]
    ('["cat", "dog"]', 'finetune_kit.deploy')
    >>> DeployMeta.from_properties(props, "model.onnx") == meta
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from finetune_kit._version import __version__
from finetune_kit.errors import CheckpointError

__all__ = ["DEPLOY_FORMAT", "DEPLOY_VERSION", "MAX_CLASSES", "MAX_SIDE", "DeployMeta"]

DEPLOY_FORMAT = "finetune_kit.deploy"
DEPLOY_VERSION = 1
MAX_CLASSES = 100_000
MAX_SIDE = 8192
MAX_CHANNELS = 64
MAX_VALUE_CHARS = 8_000_000  # 100,000 class names of 80 characters
INPUT_FORMATS = ("float32", "uint8")
OUTPUTS = (("logits",), ("logits", "probabilities"))
_FORMAT_KEY, _VERSION_KEY = "finetune_kit_format", "finetune_kit_format_version"


@dataclass(frozen=True)
class DeployMeta:
    """The model facts a deployment artifact carries: classes, preprocessing, provenance.

    Attributes:
        class_names: the class names in label order (the logits' columns).
        in_channels: image channels (1 grayscale, 3 RGB).
        image_size: ``(H, W)`` the training images were stored at; files are resized to it.
        input_size: ``(H, W)`` of the model's input (differs from ``image_size`` when the
            preset resized, e.g. to 224 for ImageNet weights).
        mean: per-channel mean of ``x / 255`` used to normalise.
        std: per-channel standard deviation of ``x / 255`` (all > 0).
        input_format: ``"float32"`` (normalised input) or ``"uint8"`` (raw pixels at
            ``input_size``, normalised inside the graph).
        outputs: ``("logits",)`` or ``("logits", "probabilities")``.
        model_name: the registered model name (or the class name of a custom module).
        source: the run directory or checkpoint the weights came from ("" if none).
        weights: ``"ema"`` or ``"model"``: which weights were exported.
        finetune_kit_version: the version that wrote the artifact.

    Example:
        >>> DeployMeta(class_names=("a", "b"), in_channels=3, image_size=(32, 32),
        ...            input_size=(32, 32), mean=(0.5,) * 3, std=(0.2,) * 3).num_classes
        2
    """

    class_names: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_format: str = "float32"
    outputs: tuple[str, ...] = ("logits",)
    model_name: str = ""
    source: str = ""
    weights: str = "model"
    finetune_kit_version: str = field(default=__version__)

    @property
    def num_classes(self) -> int:
        """The number of classes (columns of the logits)."""
        return len(self.class_names)

    def data_meta(self) -> dict[str, Any]:
        """The subset of ``DataBundle.meta()`` that preprocessing and prediction read.

        Returns:
            ``class_names``, ``in_channels``, ``image_size``, ``input_size``, ``mean``, ``std``.

        Example:
            >>> m = DeployMeta(("a",), 1, (8, 8), (8, 8), (0.5,), (0.5,))
            >>> m.data_meta()["image_size"]
            [8, 8]
        """
        return {
            "class_names": list(self.class_names),
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def to_properties(self) -> dict[str, str]:
        """The string entries written into an artifact.

        Returns:
            ``{key: JSON text}``, plus the format name and version as plain strings.

        Example:
            >>> DeployMeta(("a",), 1, (8, 8), (8, 8), (0.5,), (0.5,)).to_properties()["mean"]
            '[0.5]'
        """
        entries = {key: json.dumps(value) for key, value in asdict(self).items()}
        return {_FORMAT_KEY: DEPLOY_FORMAT, _VERSION_KEY: str(DEPLOY_VERSION), **entries}

    @classmethod
    def from_data_meta(cls, meta: Mapping[str, Any], where: str, **provenance: Any) -> DeployMeta:
        """Build from a ``DataBundle.meta()`` (as stored in checkpoints), checking every value.

        Args:
            meta: the data metadata (``class_names``, ``in_channels``, sizes, ``mean``, ``std``).
            where: the file it came from, for error messages.
            **provenance: ``input_format``, ``outputs``, ``model_name``, ``source``, ``weights``.

        Returns:
            The checked metadata.

        Raises:
            CheckpointError: a missing or out-of-range value.

        Example:
            >>> meta = {"class_names": ["a"], "in_channels": 1, "image_size": [8, 8],
            ...         "input_size": [8, 8], "mean": [0.5], "std": [0.0]}
            >>> DeployMeta.from_data_meta(meta, "run")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            finetune_kit.errors.CheckpointError: run: 'std' must be ... > 0 ...
        """
        keys = ("class_names", "in_channels", "image_size", "input_size", "mean", "std")
        missing = [key for key in keys if key not in meta]
        if missing:
            raise CheckpointError(
                f"{where}: the data metadata lacks {missing}; export from a finetune_kit run."
            )
        values = {key: meta[key] for key in keys} | {"finetune_kit_version": __version__} | provenance
        return cls._checked(values, where)

    @classmethod
    def from_properties(cls, properties: Mapping[str, str], where: str) -> DeployMeta:
        """Read the entries of an artifact back, refusing anything malformed or out of range.

        Args:
            properties: the artifact's string entries (ONNX ``metadata_props``).
            where: the file, for error messages.

        Returns:
            The checked metadata.

        Raises:
            CheckpointError: no finetune_kit entries, a newer format, or a bad value (named).

        Example:
            >>> DeployMeta.from_properties({}, "m.onnx")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            finetune_kit.errors.CheckpointError: m.onnx has no finetune_kit metadata ...
        """
        if properties.get(_FORMAT_KEY) != DEPLOY_FORMAT:
            raise CheckpointError(
                f"{where} has no finetune_kit metadata (no {_FORMAT_KEY!r} entry saying "
                f"{DEPLOY_FORMAT!r}), so its classes and preprocessing are unknown. Export the "
                "model with finetune_kit.export(..., format='onnx')."
            )
        version = properties.get(_VERSION_KEY, "")
        if not version.isdigit() or len(version) > 6:
            raise CheckpointError(f"{where}: {_VERSION_KEY} is {version[:40]!r}; expected an integer.")
        if int(version) > DEPLOY_VERSION:
            raise CheckpointError(
                f"{where} was written by a newer finetune_kit (format {version}); upgrade finetune_kit."
            )
        names = [f.name for f in cls.__dataclass_fields__.values()]
        values = {key: _decode(properties, key, where) for key in names if key in properties}
        missing = [key for key in names[:6] if key not in values]
        if missing:
            raise CheckpointError(f"{where}: the finetune_kit metadata lacks {missing}. Export again.")
        return cls._checked(values, where)

    @classmethod
    def _checked(cls, values: Mapping[str, Any], where: str) -> DeployMeta:
        channels = _integer(values["in_channels"], "in_channels", where, 1, MAX_CHANNELS)
        return cls(
            class_names=_class_names(values["class_names"], where),
            in_channels=channels,
            image_size=_size(values["image_size"], "image_size", where),
            input_size=_size(values["input_size"], "input_size", where),
            mean=_floats(values["mean"], "mean", where, channels, positive=False),
            std=_floats(values["std"], "std", where, channels, positive=True),
            input_format=_choice(values.get("input_format", "float32"), "input_format", where, INPUT_FORMATS),
            outputs=tuple(_choice(_listed(values.get("outputs", ["logits"])), "outputs", where, OUTPUTS)),
            model_name=_text(values.get("model_name", ""), "model_name", where),
            source=_text(values.get("source", ""), "source", where),
            weights=_choice(values.get("weights", "model"), "weights", where, ("ema", "model")),
            finetune_kit_version=_text(values.get("finetune_kit_version", ""), "finetune_kit_version", where),
        )


# ------------------------------------------------------------------- checks of one entry
def _bad(where: str, key: str, value: Any, expected: str) -> CheckpointError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(f"{where}: {key!r} must be {expected}, got {shown}. Export the model again.")


def _decode(properties: Mapping[str, str], key: str, where: str) -> Any:
    text = properties[key]
    if not isinstance(text, str) or len(text) > MAX_VALUE_CHARS:
        raise _bad(where, key, text, f"a JSON string of at most {MAX_VALUE_CHARS} characters")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _bad(where, key, text, "valid JSON") from None


def _listed(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _integer(value: Any, key: str, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(where, key, value, f"an integer from {low} to {high}")
    return value


def _size(value: Any, key: str, where: str) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _bad(where, key, value, f"[height, width], integers from 1 to {MAX_SIDE}")
    return tuple(_integer(v, key, where, 1, MAX_SIDE) for v in value)


def _floats(value: Any, key: str, where: str, count: int, *, positive: bool) -> tuple[float, ...]:
    expected = f"a list of {count} finite numbers" + (" > 0" if positive else "") + " (one per channel)"
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise _bad(where, key, value, expected)
    for v in value:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (positive and v <= 0):
            raise _bad(where, key, value, expected)
    return tuple(float(v) for v in value)


def _class_names(value: Any, where: str) -> tuple[str, ...]:
    expected = f"a list of 1 to {MAX_CLASSES} strings"
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_CLASSES:
        raise _bad(where, "class_names", value, expected)
    if not all(isinstance(name, str) for name in value):
        raise _bad(where, "class_names", value, expected)
    return tuple(value)


def _choice(value: Any, key: str, where: str, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        raise _bad(where, key, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise _bad(where, key, value, "a string of at most 4096 characters")
    return value
