"""Numeric precision of the forward pass: float32, or autocast to bfloat16 / float16.

Example:
    >>> import torch
    >>> PrecisionMode.resolve("32", torch.device("cpu")).autocast_dtype is None
    True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from finetune_kit.errors import DeviceError

__all__ = ["PrecisionMode"]


@dataclass(frozen=True)
class PrecisionMode:
    """A resolved precision: the autocast dtype (or ``None``) and whether a grad scaler is used."""

    name: str
    autocast_dtype: torch.dtype | None
    use_scaler: bool

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> PrecisionMode:
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
