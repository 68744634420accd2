"""Seeding and the choice between reproducible and fast kernels.

Example:
    >>> import torch
    >>> seed_everything(0); a = torch.rand(1)
    >>> seed_everything(0); bool(torch.equal(a, torch.rand(1)))
    True
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["configure_determinism", "seed_everything"]


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
