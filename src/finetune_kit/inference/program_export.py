"""A model as a ``torch.export`` program, as ONNX, and the check that both reproduce it.

One trace serves both formats: :func:`export_program` runs ``torch.export`` on the eval-mode
model (wrapped by :func:`deploy_module` to normalise uint8 input in the graph and/or to return
probabilities too, when asked), with a dynamic batch axis. :func:`onnx_bytes` converts that
program to ONNX (the ``onnx`` and ``onnxscript`` packages), renames the batch axis ``batch``,
stores the :class:`~finetune_kit.inference.deploy_meta.DeployMeta` in ``metadata_props`` and
validates the result with ``onnx.checker``; :func:`pt2_bytes` saves the program with
``torch.export.save``, the same metadata as the extra file ``finetune_kit.json``.
:func:`program_artifacts` makes both and checks each against the model
(:func:`~finetune_kit.inference.parity.check_parity`).

Example:
    >>> from finetune_kit.models import create_model
    >>> meta = DeployMeta(("a", "b"), 1, (28, 28), (28, 28), (0.5,), (0.25,))
    >>> net = create_model("convnet", num_classes=2, in_channels=1).eval()
    >>> program = export_program(deploy_module(net, meta), meta)
    >>> pt2_bytes(program, meta)[:2]
    b'PK'
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from finetune_kit.errors import ExportError, FinetuneKitError
from finetune_kit.inference.deploy_meta import DeployMeta
from finetune_kit.inference.export import Artifact
from finetune_kit.inference.export_source import ExportSource
from finetune_kit.inference.optional import require
from finetune_kit.inference.parity import check_parity, sample_batch

__all__ = [
    "EXTRA_FILE",
    "deploy_module",
    "export_program",
    "onnx_bytes",
    "program_artifacts",
    "pt2_bytes",
]

CHECK_IMAGES = 8
EXTRA_FILE = "finetune_kit.json"
MAX_BATCH = 65536
_ONNX_LIMIT = 2**31 - 1  # protobuf's limit on one serialised message


class _Normalize(nn.Module):
    """uint8 pixels in, the model's logits out: ``x / 255`` and ``(x - mean) / std`` in the graph."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the operations and order of BatchTransform, so the results are the same floats
        return self.model(x.to(torch.float32).mul(1.0 / 255).sub(self.mean).div(self.std))


class _WithProbabilities(nn.Module):
    """Logits and their softmax."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, logits.softmax(dim=1)


def deploy_module(model: nn.Module, meta: DeployMeta) -> nn.Module:
    """The eval-mode module to export: ``model``, wrapped as ``meta`` says.

    Args:
        model: the trained model (eval mode).
        meta: ``input_format == "uint8"`` adds the normalisation in front; ``outputs`` with
            ``"probabilities"`` adds the softmax as a second output.

    Returns:
        The module (``model`` itself when nothing is added).

    Example:
        >>> meta = DeployMeta(("a",), 1, (2, 2), (2, 2), (0.5,), (0.5,), input_format="uint8")
        >>> deploy_module(nn.Flatten(), meta)(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8))
        tensor([[1., 1., 1., 1.]])
    """
    if meta.input_format == "uint8":
        model = _Normalize(model, meta.mean, meta.std)
    if "probabilities" in meta.outputs:
        model = _WithProbabilities(model)
    return model.eval()


def export_program(module: nn.Module, meta: DeployMeta) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` with a dynamic batch axis (1 to 65536 images).

    Args:
        module: the module from :func:`deploy_module`.
        meta: its metadata (input format and size).

    Returns:
        The exported program.

    Raises:
        ExportError: ``torch.export`` cannot trace the model (the first line of its reason).
    """
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        return torch.export.export(module, (sample_batch(meta, 2, seed=0),), dynamic_shapes=({0: batch},))
    except FinetuneKitError:
        raise
    except Exception as exc:  # torch.export raises many unrelated types; one line for the user
        raise ExportError(
            f"torch.export cannot trace this {type(module).__name__} with a dynamic batch axis: "
            f"{_first_line(exc)}. Models need static shapes apart from the batch and no "
            "data-dependent Python control flow."
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def onnx_bytes(program: torch.export.ExportedProgram, meta: DeployMeta, opset: int) -> bytes:
    """The program as a checked ONNX model carrying ``meta``.

    Args:
        program: from :func:`export_program`.
        meta: written into the model's ``metadata_props``.
        opset: the ONNX opset (18 to 23).

    Returns:
        The serialised ONNX model (one file, weights included).

    Raises:
        ConfigError: ``onnx`` or ``onnxscript`` is not installed.
        ExportError: the conversion fails, ``onnx.checker`` rejects the result, or it is over
            2 GB.
    """
    onnx = require("onnx", "Exporting to ONNX")
    require("onnxscript", "Exporting to ONNX")
    try:
        converted = torch.onnx.export(
            program,
            (),
            None,
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=list(meta.outputs),
            verbose=False,
        )
        proto = converted.model_proto
    except Exception as exc:  # the converter raises many unrelated types; one line for the user
        raise ExportError(f"The ONNX conversion failed: {_first_line(exc)}.") from exc
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del proto.metadata_props[:]
    for key, text in meta.to_properties().items():
        proto.metadata_props.add(key=key, value=text)
    if proto.ByteSize() > _ONNX_LIMIT:
        raise ExportError(
            f"The ONNX model would be {proto.ByteSize() / 2**30:.1f} GiB; a single ONNX file "
            "holds at most 2 GiB. Export format='torch_export' instead."
        )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the exported model: {_first_line(exc)}.") from exc
    return proto.SerializeToString()


def pt2_bytes(program: torch.export.ExportedProgram, meta: DeployMeta) -> bytes:
    """The program saved by ``torch.export.save``, ``meta`` as the extra file ``finetune_kit.json``.

    Args:
        program: from :func:`export_program`.
        meta: the metadata (the JSON of ``meta.to_properties()``).

    Returns:
        The ``.pt2`` archive.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
        >>> meta = DeployMeta(("a", "b"), 1, (2, 2), (2, 2), (0.5,), (0.5,))
        >>> pt2_bytes(export_program(net, meta), meta)[:2]
        b'PK'
    """
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={EXTRA_FILE: json.dumps(meta.to_properties())})
    return buffer.getvalue()


def program_artifacts(
    src: ExportSource,
    targets: Mapping[str, Path],
    *,
    with_preprocessing: bool,
    probabilities: bool,
    tolerance: float | None,
    opset: int,
) -> list[tuple[Artifact, bytes]]:
    """The ONNX and/or ``torch.export`` artifacts of a source, each checked when asked.

    Args:
        src: the model and its description.
        targets: ``{"onnx": path, "torch_export": path}`` (either or both).
        with_preprocessing: normalise uint8 input in the graph.
        probabilities: add the softmax output.
        tolerance: refuse an artifact whose outputs differ from the model's by more than
            this; None skips the check.
        opset: the ONNX opset.

    Returns:
        ``(Artifact, bytes to write)`` per format.

    Raises:
        ExportError: tracing or conversion fails, or an artifact differs by more than
            ``tolerance``.
        CheckpointError: the source's data metadata is malformed.
    """
    meta = DeployMeta.from_data_meta(
        src.meta,
        src.where,
        input_format="uint8" if with_preprocessing else "float32",
        outputs=["logits", "probabilities"] if probabilities else ["logits"],
        model_name=src.name,
        source=str(src.origin.get("checkpoint") or ""),
        weights=src.weights,
    )
    program = export_program(deploy_module(src.model, meta), meta)
    made = []
    for kind, path in targets.items():
        blob = onnx_bytes(program, meta, opset) if kind == "onnx" else pt2_bytes(program, meta)
        if tolerance is None:
            made.append((Artifact(kind, path), blob))
            continue
        parity = check_parity(kind, blob, src.model, meta, tolerance=tolerance, n=CHECK_IMAGES)
        if not parity.accepted(tolerance):
            raise ExportError(
                f"The {kind} export of {src.name} does not reproduce the PyTorch model: their "
                f"outputs differ by up to {parity.max_abs_diff:.2e} on {CHECK_IMAGES} images "
                f"(tolerance {tolerance:.0e}{parity.noise_note()}). Nothing was written. Pass a "
                "larger tolerance (--tolerance) if that is acceptable, or check=False "
                "(--no-check) to skip the check."
            )
        made.append((Artifact(kind, path, parity.max_abs_diff, CHECK_IMAGES, parity.float32_noise), blob))
    return made
