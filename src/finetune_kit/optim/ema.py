"""Exponential moving average of a model's weights, as timm's ``ModelEmaV3``.

After every optimizer step, every floating-point entry of the model's ``state_dict`` (the
parameters *and* the BatchNorm running mean/var) is averaged into a frozen copy:
``ema = decay * ema + (1 - decay) * model``. Integer buffers (BatchNorm's
``num_batches_tracked``) are copied. Evaluate with ``ema.module``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from finetune_kit.optim import ModelEma
    >>> model = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(0.0)
    >>> ema = ModelEma(model, decay=0.9)
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(1.0)
    >>> ema.update(model)
    >>> round(ema.module.weight.item(), 6)
    0.1
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from finetune_kit.errors import CheckpointError, ConfigError, ShapeError
from finetune_kit.models.unwrap import unwrap_model

__all__ = ["ModelEma"]


class ModelEma:
    """A frozen copy of a model holding the exponential moving average of its weights.

    Args:
        model: the model being trained (unwrapped from DataParallel / DDP).
        decay: weight of the old average per update, in ``[0, 1)``; 0.999 averages over
            roughly the last 1000 steps.
        warmup: use ``min(decay, (1 + n) / (10 + n))`` at update ``n`` (TensorFlow's
            ``num_updates`` rule), so the average follows the model closely at first.
        device: keep the copy on another device (e.g. ``"cpu"`` to save accelerator memory).

    Raises:
        ConfigError: ``decay`` outside ``[0, 1)``.

    Example:
        >>> ema = ModelEma(torch.nn.Linear(2, 2), decay=0.99, warmup=True)
        >>> ema.current_decay()
        0.1
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        *,
        warmup: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1); got {decay}.")
        self.decay, self.warmup, self.num_updates = float(decay), bool(warmup), 0
        self.device = torch.device(device) if device is not None else None
        self.module = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False)
        if self.device is not None:
            self.module.to(self.device)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average ``model``'s current weights and buffers into :attr:`module`.

        Raises:
            ShapeError: ``model`` does not have the same state_dict entries.
        """
        decay = self.current_decay()
        source = unwrap_model(model).state_dict()
        target = self.module.state_dict()
        if source.keys() != target.keys():
            missing = sorted(set(target) ^ set(source))[:5]
            raise ShapeError(
                f"The model does not match its EMA copy (entries {missing} differ); "
                "update the EMA with the model it was created from."
            )
        for key, ema_value in target.items():
            value = source[key].detach()
            if value.device != ema_value.device:
                value = value.to(ema_value.device, non_blocking=True)
            if ema_value.is_floating_point():
                ema_value.lerp_(value.to(ema_value.dtype), 1.0 - decay)
            else:
                ema_value.copy_(value)
        self.num_updates += 1

    @torch.no_grad()
    def set(self, model: nn.Module) -> None:
        """Copy ``model``'s weights and buffers into :attr:`module` (restart the average)."""
        self.module.load_state_dict(unwrap_model(model).state_dict())

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights with the decay settings and update count."""
        return {
            "module": self.module.state_dict(),
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            CheckpointError: the saved weights do not fit the model.
        """
        try:
            self.module.load_state_dict(state["module"])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(
                f"The EMA state does not fit this model: {' '.join(str(err).split())[:300]}. "
                "Resume with the same model and ema settings as the original run."
            ) from None
        self.decay = float(state.get("decay", self.decay))
        self.warmup = bool(state.get("warmup", self.warmup))
        self.num_updates = int(state.get("num_updates", 0))

    def __repr__(self) -> str:
        return f"ModelEma(decay={self.decay}, warmup={self.warmup}, num_updates={self.num_updates})"
