"""Numeric precision of the forward pass: float32, or autocast to bfloat16 / float16.

``"auto"`` picks bfloat16 autocast where the hardware computes in bfloat16 natively -- a CUDA
GPU that supports it, a CPU with AVX512-BF16 or AMX (where oneDNN trained small ConvNets 1.3x
to 2.4x faster than in float32, see the performance guide) -- and float32 everywhere else,
where bfloat16 would be emulated and slower.

Example:
    >>> import torch
    >>> PrecisionMode.resolve("32", torch.device("cpu")).autocast_dtype is None
    True
    >>> PrecisionMode.resolve("auto", torch.device("cpu")).name in ("32", "bf16-mixed")
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from finetune_kit.errors import DeviceError

__all__ = ["PrecisionMode", "native_bf16"]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (not emulated in float32).

    CUDA: ``torch.cuda.is_bf16_supported()``; CPU: AVX512-BF16 or AMX instructions; other
    devices: False.

    Example:
        >>> native_bf16(torch.device("meta"))
        False
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu  # private probes, the only ones torch has; absent means "not known"
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, probe, lambda: False)() for probe in probes)
    return False


@dataclass(frozen=True)
class PrecisionMode:
    """A resolved precision: the autocast dtype (or ``None``) and whether a grad scaler is used.

    Attributes:
        name: the precision used: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"``.
        autocast_dtype: the autocast dtype, or None for float32.
        use_scaler: whether a gradient scaler guards float16 gradients.
        requested: what was asked for: ``"auto"``, or the same as ``name`` (empty when the
            mode is built directly rather than by :meth:`resolve`).
    """

    name: str
    autocast_dtype: torch.dtype | None
    use_scaler: bool
    requested: str = ""

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> PrecisionMode:
        """Check that ``name`` works on ``device``; ``"auto"`` becomes ``"bf16-mixed"`` or ``"32"``.

        Raises:
            DeviceError: e.g. ``"16-mixed"`` on a CPU build without fp16 autocast support.
        """
        name = str(name)
        if name == "auto":
            chosen = "bf16-mixed" if native_bf16(device) else "32"
            return dataclasses.replace(cls.resolve(chosen, device), requested="auto")
        if name == "32":
            return cls(name, None, False, name)
        if name == "bf16-mixed":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise DeviceError(
                    f"precision='bf16-mixed': the GPU {torch.cuda.get_device_name(device)} does not "
                    "support bfloat16. Use precision='16-mixed' or '32'."
                )
            return cls(name, torch.bfloat16, False, name)
        if name == "16-mixed":
            if device.type == "mps":
                raise DeviceError("precision='16-mixed' is not supported on MPS here; use '32'.")
            return cls(name, torch.float16, device.type == "cuda", name)
        raise DeviceError(f"Unknown precision {name!r}. Use '32', 'bf16-mixed', '16-mixed' or 'auto'.")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context for a forward pass (a no-op for ``"32"``)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)
