"""Where the loop runs: a device name resolved, once, to a device that exists.

A request the machine cannot meet (a GPU that is not there) is an error that says what to ask
for instead.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import torch

from finetune_kit.errors import DeviceError

__all__ = ["resolve_device"]


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
        raise DeviceError(f"Unknown device {name!r}. Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
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
