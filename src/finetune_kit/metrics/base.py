"""The streaming metric protocol: sum-only state tensors, updated per batch, computed at the end.

A :class:`Metric` keeps its state as a list of tensors of sums and counts that live on the
data's device: ``update`` adds a batch without waiting for the device (no ``.item()``, no
data-dependent shapes), ``compute`` reads the state once, and because every state is a sum,
:meth:`Metric.sync` adds them across processes with any all-reduce (e.g.
``torch.distributed.all_reduce``). The built-in metrics are in
:mod:`finetune_kit.metrics.builtin`; :mod:`finetune_kit.metrics` looks them up by name.

Example:
    >>> import torch
    >>> class Count(Metric):
    ...     def _new_state(self):
    ...         return [torch.zeros((), dtype=torch.int64, device=self._device)]
    ...     def update(self, logits_or_preds, targets, loss=None):
    ...         self._state[0] += targets.numel()
    ...     def _compute(self, state):
    ...         return int(state[0])
    >>> m = Count(num_classes=2)
    >>> m.update(torch.zeros(3, 2), torch.tensor([0, 1, 1]))
    >>> m.compute()
    3
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from finetune_kit.errors import ConfigError
from finetune_kit.metrics.report import Value

__all__ = ["Metric"]


class Metric:
    """Base of the streaming metrics: sum-only state tensors that live on the data's device.

    Subclasses define ``_new_state() -> list[Tensor]``, ``update`` and ``_compute``.

    Args:
        num_classes: number of classes ``C``.
        device: where the state starts (it follows the data on the first ``update``).
        ignore_index: targets equal to it are skipped.

    Raises:
        ConfigError: ``num_classes < 1``.

    Example:
        >>> import torch
        >>> from finetune_kit.metrics.builtin import Accuracy
        >>> m = Accuracy(num_classes=2)
        >>> m.update(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> m.compute()
        0.5
    """

    def __init__(
        self, num_classes: int, *, device: str | torch.device | None = None, ignore_index: int = -100
    ) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer; got {num_classes!r}.")
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._state = self._new_state()

    def _new_state(self) -> list[Tensor]:
        raise NotImplementedError

    def update(self, logits_or_preds: Tensor, targets: Tensor, loss: Tensor | None = None) -> None:
        """Add one batch (no host sync)."""
        raise NotImplementedError

    def _compute(self, state: list[Tensor]) -> Value:
        raise NotImplementedError

    def compute(self) -> Value:
        """The metric over everything added since the last :meth:`reset` (reads the device)."""
        return self._compute([s.detach().cpu() for s in self._state])

    def reset(self) -> None:
        """Zero the state (it stays on its device)."""
        self._state = [s.to(self._device) for s in self._new_state()]

    def to(self, device: str | torch.device) -> Metric:
        """Move the state to ``device`` (e.g. before :meth:`sync` with NCCL); returns self."""
        self._device = torch.device(device)
        self._state = [s.to(self._device) for s in self._state]
        return self

    def _follow(self, tensor: Tensor) -> None:
        if self._state[0].device != tensor.device:
            self.to(tensor.device)

    def state_tensors(self) -> list[Tensor]:
        """The state: tensors of sums and counts that add up across processes."""
        return list(self._state)

    def sync(self, all_reduce_fn: Callable[[Tensor], Any]) -> None:
        """Sum the state across processes in place.

        Args:
            all_reduce_fn: called on each state tensor; either reduces in place (like
                ``torch.distributed.all_reduce``) or returns the reduced tensor.

        Example:
            >>> import torch
            >>> from finetune_kit.metrics.builtin import Accuracy
            >>> m = Accuracy(num_classes=2)
            >>> m.update(torch.tensor([1]), torch.tensor([1]))
            >>> m.sync(lambda t: t * 2)   # as if two processes saw the same batch
            >>> int(m.state_tensors()[0].sum())
            2
        """
        for tensor in self._state:
            reduced = all_reduce_fn(tensor)
            if isinstance(reduced, Tensor) and reduced is not tensor:
                tensor.copy_(reduced)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"
