"""An exported ONNX classifier loaded in onnxruntime: :class:`OnnxModel`.

Loading needs only onnxruntime (and numpy): the file is parsed by onnxruntime, its
finetune_kit metadata is read and checked (:class:`~finetune_kit.inference.deploy_meta.DeployMeta`),
and the graph's input and output shapes are checked against it, so a file that is missing,
corrupt, from another tool or inconsistent fails here with one clear
:class:`~finetune_kit.errors.CheckpointError` rather than at the first prediction. This module
does not import PyTorch.

Example:
    >>> OnnxModel("missing.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    finetune_kit.errors.CheckpointError: No ONNX model at missing.onnx ...
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from finetune_kit.errors import CheckpointError, ConfigError, ShapeError
from finetune_kit.inference.deploy_meta import DeployMeta
from finetune_kit.inference.optional import require

__all__ = ["OnnxModel"]

_INPUT_TYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}
_DTYPES = {"float32": np.float32, "uint8": np.uint8}


def _runtime_errors(ort: ModuleType) -> tuple[type[BaseException], ...]:
    """The exception classes onnxruntime raises for files it cannot load or run."""
    state = ort.capi.onnxruntime_pybind11_state
    found = [getattr(state, name) for name in dir(state)]
    own = [c for c in found if isinstance(c, type) and issubclass(c, Exception)]
    return (RuntimeError, ValueError, OSError, *own)


class OnnxModel:
    """An ONNX classifier written by :func:`finetune_kit.export`, ready to run on the CPU.

    Args:
        path: the ``.onnx`` file.
        threads: onnxruntime's intra-op threads (None: its default, one per physical core).

    Attributes:
        path: the file.
        meta: its checked :class:`~finetune_kit.inference.deploy_meta.DeployMeta` (classes,
            sizes, normalisation, input format, provenance).
        session: the ``onnxruntime.InferenceSession``.

    Raises:
        ConfigError: onnxruntime is not installed (``pip install "finetune-kit[deploy]"``), or
            a bad ``threads``.
        CheckpointError: the file is missing, not a valid ONNX model, has no (or malformed)
            finetune_kit metadata, or a graph that disagrees with its metadata.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> net = fk.create_model("convnet", num_classes=2, in_channels=1)
        >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [28, 28],
        ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
        >>> path = fk.export(net, tempfile.mkdtemp() + "/net.onnx", format="onnx", meta=meta)
        >>> model = OnnxModel(path)
        >>> model.class_names, model.meta.input_format
        (['a', 'b'], 'float32')
        >>> model.run(np.zeros((3, 1, 28, 28), np.float32)).shape
        (3, 2)
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ConfigError(f"threads must be None or an integer >= 1, got {threads!r}.")
        ort = require("onnxruntime", "Running an ONNX model")
        if not self.path.is_file():
            raise CheckpointError(
                f"No ONNX model at {self.path} (missing, or not a file). Write one with "
                "finetune-kit export --format onnx."
            )
        self.session = self._session(ort, threads)
        where = str(self.path)
        self.meta = DeployMeta.from_properties(self.session.get_modelmeta().custom_metadata_map, where)
        self._check_graph()
        self.input_name = self.session.get_inputs()[0].name

    def _session(self, ort: ModuleType, threads: int | None) -> Any:
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except _runtime_errors(ort) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise CheckpointError(
                f"{self.path} is not a valid ONNX model onnxruntime can run ({reason}). Export it again."
            ) from None

    def _check_graph(self) -> None:
        """The graph takes and returns what the metadata says, or a CheckpointError."""
        meta, where = self.meta, self.path
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        expected = (meta.in_channels, *meta.input_size)
        if len(inputs) != 1 or inputs[0].type != _INPUT_TYPES[meta.input_format]:
            raise CheckpointError(
                f"{where}: the graph should take one {_INPUT_TYPES[meta.input_format]} input, as its "
                f"metadata says; it takes {[(i.name, i.type) for i in inputs]}. Export it again."
            )
        shape = inputs[0].shape
        fixed = zip(shape[1:], expected, strict=False)
        if len(shape) != 4 or any(isinstance(d, int) and d != e for d, e in fixed):
            raise CheckpointError(
                f"{where}: the graph's input has shape {shape} but its metadata describes "
                f"(N, {', '.join(map(str, expected))}). Export it again."
            )
        names = [o.name for o in outputs]
        if tuple(names) != meta.outputs or len(outputs[0].shape) != 2:
            raise CheckpointError(
                f"{where}: the graph's outputs are {names}, its metadata says {list(meta.outputs)} "
                "with logits of shape (N, classes). Export it again."
            )
        classes = outputs[0].shape[1]
        if isinstance(classes, int) and classes != meta.num_classes:
            raise CheckpointError(
                f"{where}: the graph returns {classes} logits per image but its metadata names "
                f"{meta.num_classes} classes. Export it again."
            )

    @property
    def class_names(self) -> list[str]:
        """The class names in label order."""
        return list(self.meta.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image of the graph's input."""
        return (self.meta.in_channels, *self.meta.input_size)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The logits of a batch already in the graph's input format.

        Args:
            batch: ``(N, C, H, W)`` at ``input_size``: float32 normalised images, or uint8
                pixels when the graph normalises (``meta.input_format == "uint8"``).

        Returns:
            ``(N, num_classes)`` float32 logits.

        Raises:
            ShapeError: the batch has another dtype or shape than the graph takes.

        Example:
            >>> import tempfile, finetune_kit as fk
            >>> net = fk.create_model("convnet", num_classes=2, in_channels=1)
            >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [28, 28],
            ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
            >>> path = fk.export(net, tempfile.mkdtemp() + "/m.onnx", format="onnx", meta=meta,
            ...                  with_preprocessing=True)
            >>> OnnxModel(path).run(np.zeros((1, 1, 28, 28), np.uint8)).dtype
            dtype('float32')
        """
        dtype = _DTYPES[self.meta.input_format]
        if batch.dtype != dtype or batch.ndim != 4 or batch.shape[1:] != self.input_shape or not len(batch):
            raise ShapeError(
                f"{self.path} takes {self.meta.input_format} batches of shape "
                f"(N, {', '.join(map(str, self.input_shape))}); got {batch.dtype} {tuple(batch.shape)}."
            )
        return self.session.run([self.meta.outputs[0]], {self.input_name: batch})[0]
