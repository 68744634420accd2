"""The check that an exported artifact reproduces its model: :func:`check_parity`.

The artifact, serialised as it will be written, is read back as a user would read it
(onnxruntime on the CPU for ONNX, ``torch.export.load`` for a program) and run beside the
eval-mode PyTorch model on the same batch of random images, at another batch size than the
traced one so the dynamic batch axis is exercised. The model gets the same pixels normalised
by the library's evaluation transform, so a graph that normalises itself is checked too.

Two float32 implementations of a deep network never agree exactly: each rounds differently,
and the rounding grows with depth. When the difference exceeds the tolerance,
:func:`float32_noise` measures how far eager PyTorch in float32 is from the same model in
float64 on the same batch; an artifact within :data:`NOISE_FACTOR` times that is as exact as
eager PyTorch itself, and is accepted (a ResNet-152 is such a case).

Example:
    >>> from torch import nn
    >>> from finetune_kit.inference.program_export import deploy_module, export_program, pt2_bytes
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    >>> meta = DeployMeta(("a", "b"), 1, (2, 2), (2, 2), (0.5,), (0.5,), input_format="uint8")
    >>> blob = pt2_bytes(export_program(deploy_module(net, meta), meta), meta)
    >>> parity = check_parity("torch_export", blob, net, meta, tolerance=1e-4)
    >>> parity.max_abs_diff < 1e-6, parity.accepted(1e-4), parity.float32_noise
    (True, True, None)
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from finetune_kit.data.augment import BatchTransform
from finetune_kit.errors import ExportError
from finetune_kit.inference.deploy_meta import DeployMeta
from finetune_kit.inference.optional import require

__all__ = ["NOISE_FACTOR", "Parity", "check_parity", "float32_noise", "sample_batch"]

NOISE_FACTOR = 4.0


def sample_batch(meta: DeployMeta, n: int, seed: int) -> torch.Tensor:
    """``n`` random images at the model's input size, in the graph's input format.

    Args:
        meta: the model's metadata.
        n: batch size.
        seed: the random seed (the batch depends only on it and ``meta``).

    Returns:
        uint8 pixels, or the same pixels normalised as the evaluation data was (float32).

    Example:
        >>> meta = DeployMeta(("a",), 3, (8, 8), (8, 8), (0.5,) * 3, (0.5,) * 3)
        >>> sample_batch(meta, 2, seed=0).dtype
        torch.float32
    """
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, meta.in_channels, *meta.input_size), dtype=torch.uint8, generator=gen)
    return pixels if meta.input_format == "uint8" else BatchTransform(meta.mean, meta.std)(pixels)


@dataclass(frozen=True)
class Parity:
    """How closely an artifact reproduces its model.

    Attributes:
        max_abs_diff: the largest absolute difference of their outputs (logits, and
            probabilities when the artifact has them).
        float32_noise: the largest absolute difference between the model's float32 and
            float64 logits on the same batch; measured only when ``max_abs_diff`` exceeds the
            tolerance (None otherwise, or when the model cannot run in float64).

    Example:
        >>> Parity(4e-4, 2.5e-4).accepted(1e-4), Parity(4e-4, None).accepted(1e-4)
        (True, False)
    """

    max_abs_diff: float
    float32_noise: float | None = None

    def accepted(self, tolerance: float) -> bool:
        """Within ``tolerance``, or within :data:`NOISE_FACTOR` times the model's float32 noise."""
        if self.max_abs_diff <= tolerance:
            return True
        return self.float32_noise is not None and self.max_abs_diff <= NOISE_FACTOR * self.float32_noise

    def noise_note(self) -> str:
        """``"; eager float32 PyTorch itself is 2.5e-04 from float64"``, or ``""``."""
        if self.float32_noise is None:
            return ""
        return f"; eager float32 PyTorch itself is {self.float32_noise:.1e} from float64"


def _artifact_outputs(kind: str, blob: bytes, batch: torch.Tensor) -> list[np.ndarray]:
    """The outputs of a serialised artifact on ``batch``, read back as a user would."""
    if kind == "onnx":
        ort = require("onnxruntime", "Checking an ONNX export")
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    program = torch.export.load(io.BytesIO(blob))
    with torch.no_grad():
        out = program.module()(batch)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def float32_noise(model: nn.Module, floats: torch.Tensor) -> float | None:
    """How far the model's float32 logits are from its float64 logits on ``floats``.

    Args:
        model: the eval-mode model (not changed: a float64 copy runs).
        floats: its normalised float32 input.

    Returns:
        The max absolute difference, or None when the model cannot run in float64.

    Example:
        >>> net = nn.Linear(3, 2).eval()
        >>> float32_noise(net, torch.randn(4, 3)) < 1e-6
        True
    """
    with torch.no_grad():
        single = model(floats)
        try:
            double = copy.deepcopy(model).double()(floats.double())
        except (RuntimeError, TypeError, NotImplementedError):  # an operator without float64
            return None
    return float((single.double() - double).abs().max())


def check_parity(
    kind: str, blob: bytes, model: nn.Module, meta: DeployMeta, *, tolerance: float, n: int = 8
) -> Parity:
    """Run an artifact beside the eval-mode PyTorch model and compare their outputs.

    Args:
        kind: ``"onnx"`` (run in onnxruntime, CPU) or ``"torch_export"`` (``torch.export.load``).
        blob: the serialised artifact.
        model: the original model, in eval mode.
        meta: the artifact's metadata.
        tolerance: above this difference the model's float32 noise is measured too.
        n: images in the batch.

    Returns:
        The :class:`Parity`.

    Raises:
        ExportError: the artifact's outputs have other shapes than the model's.
    """
    batch = sample_batch(meta, n, seed=1)
    floats = batch if meta.input_format == "float32" else BatchTransform(meta.mean, meta.std)(batch)
    with torch.no_grad():
        logits = model(floats)
    expected = [logits, logits.softmax(dim=1)][: len(meta.outputs)]
    got = _artifact_outputs(kind, blob, batch)
    shapes = [tuple(e.shape) for e in expected]
    if [g.shape for g in got] != shapes:
        raise ExportError(f"The {kind} artifact returns shapes {[g.shape for g in got]}, the model {shapes}.")
    difference = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
    if difference <= tolerance:
        return Parity(difference)
    return Parity(difference, float32_noise(model, floats))
