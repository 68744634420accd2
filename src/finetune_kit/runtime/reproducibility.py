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

from finetune_kit.errors import ConfigError

__all__ = ["MAX_SEED", "check_seed", "configure_determinism", "seed_everything"]

MAX_SEED = 2**64 - 1
"""The largest seed PyTorch's generators accept."""


def check_seed(seed: object, what: str = "seed") -> int:
    """Return ``seed`` if it is an integer in ``[0, MAX_SEED]``, else raise ConfigError.

    Example:
        >>> check_seed(2**70)
        Traceback (most recent call last):
        ...
        finetune_kit.errors.ConfigError: seed=1180591620717411303424 is out of range: ...
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"{what}={seed!r} is out of range: expected an integer in [0, 2**64 - 1] "
            f"(PyTorch's seeds are 64 bits), e.g. {what}=0."
        )
    return seed


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer.

    Raises:
        ConfigError: ``seed`` is not an integer in ``[0, MAX_SEED]``.
    """
    check_seed(seed)
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
