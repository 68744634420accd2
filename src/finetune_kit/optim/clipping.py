"""Gradient clipping by value and by total norm, returning the norm for logging.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([3.0, 4.0])
    >>> float(clip_gradients([p], max_norm=1.0))
    5.0
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from finetune_kit.errors import ConfigError

__all__ = ["clip_gradients"]


def clip_gradients(
    parameters: nn.Module | Iterable[Tensor] | Tensor,
    *,
    max_norm: float | None = None,
    max_value: float | None = None,
    norm_type: float = 2.0,
) -> Tensor:
    """Clip gradients by value and/or by total norm; return the total norm.

    Value clipping (``clip_grad_value_``) runs first, then norm clipping (``clip_grad_norm_``).
    The returned norm is the one norm clipping saw (before its own scaling); with neither
    limit, gradients are left alone and their norm is returned (for logging). No host sync.

    Args:
        parameters: a model, parameters, or one tensor; those without ``.grad`` are skipped.
        max_norm: scale all gradients so their total ``norm_type``-norm is at most this.
        max_value: clamp every gradient element to ``[-max_value, max_value]``.
        norm_type: the norm (2.0; ``inf`` for the max-norm).

    Returns:
        The total gradient norm, a scalar tensor on the gradients' device.

    Raises:
        ConfigError: a non-positive limit.

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.tensor([3.0, 4.0])
        >>> float(clip_gradients([p], max_norm=1.0)), [round(g, 4) for g in p.grad.tolist()]
        (5.0, [0.6, 0.8])
    """
    for name, limit in (("max_norm", max_norm), ("max_value", max_value)):
        if limit is not None and not limit > 0:
            raise ConfigError(f"{name} must be > 0; got {limit}.")
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if max_value is not None:
        torch.nn.utils.clip_grad_value_(params, max_value)
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    if not grads:
        return torch.zeros(())
    norms = torch.stack([torch.linalg.vector_norm(g.detach(), norm_type) for g in grads])
    return torch.linalg.vector_norm(norms, norm_type)
