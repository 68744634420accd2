"""Top losses: the samples of a loader the model gets most wrong, highest loss first.

:func:`top_losses` makes one pass over a loader with the model in eval mode and keeps the ``k``
samples with the highest cross-entropy loss, with their targets, predictions and confidences
(:class:`TopLosses`); :func:`~finetune_kit.analysis.figures.plot_images` draws them with
:meth:`TopLosses.titles`, as :class:`~finetune_kit.PlotCallback` does at test time.

Example:
    >>> import torch
    >>> from finetune_kit.data import DeviceLoader, ImageTensorDataset
    >>> ds = ImageTensorDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
    ...                         torch.tensor([0, 1, 1, 0]), ["a", "b"])
    >>> loader = DeviceLoader(ds, batch_size=4, mean=(0.0,), std=(1.0,))
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> worst = top_losses(net, loader, k=2)
    >>> worst.images.shape, len(worst.titles(["a", "b"]))
    (torch.Size([2, 1, 2, 2]), 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.runtime import PrecisionMode, eval_forward

__all__ = ["TopLosses", "top_losses"]


@dataclass(frozen=True, eq=False)
class TopLosses:
    """The highest-loss samples of a loader, highest first (all tensors on the CPU).

    Attributes:
        images: ``(k, C, H, W)`` the samples as the model saw them (normalised float).
        targets: ``(k,)`` true class indices.
        predictions: ``(k,)`` predicted class indices (argmax).
        confidences: ``(k,)`` softmax probability of the predicted class.
        losses: ``(k,)`` cross-entropy loss of each sample, descending.
        positions: ``(k,)`` positions in the loader's order (the split's index for an
            unshuffled, single-process loader such as ``loaders.test``).

    Example:
        >>> t = torch.tensor
        >>> worst = TopLosses(torch.zeros(1, 1, 2, 2), t([1]), t([0]), t([0.9]), t([2.5]), t([7]))
        >>> len(worst), worst.positions.tolist()
        (1, [7])
    """

    images: torch.Tensor
    targets: torch.Tensor
    predictions: torch.Tensor
    confidences: torch.Tensor
    losses: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return int(self.losses.shape[0])

    def titles(self, class_names: Sequence[str]) -> list[str]:
        """One title per sample: true name, predicted name with its probability, loss.

        Example:
            >>> t = torch.tensor
            >>> TopLosses(t([]), t([1]), t([0]), t([0.9]), t([2.5]), t([7])).titles(["a", "b"])
            ['true: b\\npred: a (0.90)\\nloss 2.50']
        """
        return [
            f"true: {class_names[int(t)]}\npred: {class_names[int(p)]} ({float(c):.2f})\n"
            f"loss {float(loss):.2f}"
            for t, p, c, loss in zip(
                self.targets, self.predictions, self.confidences, self.losses, strict=True
            )
        ]


def top_losses(
    model: nn.Module, loader: Any, k: int = 16, *, precision: PrecisionMode | None = None
) -> TopLosses:
    """The ``k`` samples of ``loader`` with the highest cross-entropy loss under ``model``.

    One pass over ``loader.iter_epoch(0)`` with the model in eval mode (its mode is restored
    afterwards); only ``k`` candidates are kept on the device at any time.

    Args:
        model: the classifier, on the loader's device.
        loader: a finetune_kit loader (``DeviceLoader`` / ``TorchLoader``, e.g.
            ``trainer.loaders.test``) yielding normalised ``(x, y)`` batches.
        k: how many samples to return (fewer when the loader holds fewer).
        precision: run the forward pass under this precision's autocast (e.g.
            ``trainer.precision``); None runs in the model's dtype.

    Returns:
        :class:`TopLosses`, highest loss first.

    Raises:
        ConfigError: ``k`` is not a positive integer, or the loader yields no samples.

    Example:
        >>> import torch
        >>> from finetune_kit.data import DeviceLoader, ImageTensorDataset
        >>> ds = ImageTensorDataset(torch.zeros(5, 1, 4, 4, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 0, 1, 1]), ["a", "b"])
        >>> loader = DeviceLoader(ds, batch_size=2, mean=(0.0,), std=(1.0,))
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> worst = top_losses(net, loader, k=3)
        >>> len(worst), bool(worst.losses[0] >= worst.losses[-1])
        (3, True)
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"top_losses needs k >= 1 (an integer); got {k!r}.")
    kept: list[torch.Tensor] | None = None  # images, targets, preds, confidences, losses, positions
    seen = 0
    for logits, (x, y) in eval_forward(model, loader.iter_epoch(0), precision=precision):
        losses = F.cross_entropy(logits, y, reduction="none")
        confidences, predictions = logits.softmax(dim=1).max(dim=1)
        positions = torch.arange(seen, seen + len(y), device=y.device)
        seen += len(y)
        batch = [x.float(), y, predictions, confidences, losses, positions]
        if kept is not None:
            batch = [torch.cat(pair) for pair in zip(kept, batch, strict=True)]
        order = batch[4].topk(min(k, len(batch[4]))).indices
        kept = [t[order] for t in batch]
    if kept is None:
        raise ConfigError("top_losses: the loader yielded no samples.")
    return TopLosses(*(t.cpu() for t in kept))
