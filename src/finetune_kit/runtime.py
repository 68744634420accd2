"""Where and how the loop runs: device, precision, seeding and determinism.

Each choice is resolved once, before any work, and a request the machine cannot meet (a GPU that
is not there, fp16 on a CPU that cannot do it) is an error that says what to ask for instead.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> Precision.resolve("32", torch.device("cpu")).autocast_dtype is None
    True
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from finetune_kit.errors import DeviceError

__all__ = ["Precision", "configure_determinism", "resolve_device", "seed_everything"]


def resolve_device(name: str) -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a device that exists.

    Raises:
        DeviceError: the device is not available here; the message says what is.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(
            f"Unknown device {name!r}. Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={name!r} was asked for, but no CUDA GPU is available on this machine "
                f"(torch {torch.__version__}). Use device='cpu' or device='auto'."
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered 0..{torch.cuda.device_count() - 1}."
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise DeviceError("device='mps' was asked for, but MPS is not available. Use 'cpu' or 'auto'.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Unsupported device {name!r}. Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    return device


@dataclass(frozen=True)
class Precision:
    """A resolved precision: the autocast dtype (or ``None``) and whether a grad scaler is used."""

    name: str
    autocast_dtype: torch.dtype | None
    use_scaler: bool

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        """Check that ``name`` works on ``device``.

        Raises:
            DeviceError: e.g. ``"16-mixed"`` on a CPU build without fp16 autocast support.
        """
        name = str(name)
        if name == "32":
            return cls(name, None, False)
        if name == "bf16-mixed":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise DeviceError(
                    f"precision='bf16-mixed': the GPU {torch.cuda.get_device_name(device)} does not "
                    "support bfloat16. Use precision='16-mixed' or '32'."
                )
            return cls(name, torch.bfloat16, False)
        if name == "16-mixed":
            if device.type == "mps":
                raise DeviceError("precision='16-mixed' is not supported on MPS here; use '32'.")
            return cls(name, torch.float16, device.type == "cuda")
        raise DeviceError(f"Unknown precision {name!r}. Use '32', 'bf16-mixed' or '16-mixed'.")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context for a forward pass (a no-op for ``"32"``)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Choose between reproducible and fast kernels, explicitly (never silently).

    ``deterministic=True`` turns on ``torch.use_deterministic_algorithms`` and turns off cuDNN
    autotuning; ``False`` lets cuDNN pick the fastest algorithms (``cudnn.benchmark``).
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = device.type == "cuda"
