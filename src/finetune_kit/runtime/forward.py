"""The evaluation forward pass, in one place: eval mode, no gradients, autocast, test-time flips.

Evaluation, top losses and prediction all run a model over batches the same way:
:func:`eval_forward` puts the model in eval mode for the pass and restores its previous mode
afterwards (also when the pass fails), disables autograd, and returns float32 logits.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Dropout(0.5)).train()
    >>> batches = [(torch.ones(3, 4), torch.zeros(3))]
    >>> [tuple(logits.shape) for logits, _ in eval_forward(net, batches)], net.training
    ([(3, 2)], True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.runtime.precision import PrecisionMode

__all__ = ["TTA_MODES", "eval_forward", "eval_mode", "predict_logits"]

TTA_MODES = (None, "flip")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore its train/eval mode.

    Example:
        >>> net = torch.nn.Linear(1, 1).train()
        >>> with eval_mode(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def predict_logits(
    model: nn.Module, x: torch.Tensor, *, precision: PrecisionMode | None = None, tta: str | None = None
) -> torch.Tensor:
    """Logits of ``model`` for one batch, in float32.

    Args:
        model: the network (its mode is the caller's business; see :func:`eval_forward`).
        x: ``(N, C, H, W)`` a normalised batch on the model's device.
        precision: run under this precision's autocast; None runs in the model's dtype.
        tta: ``"flip"`` averages the probabilities of each image and its mirror image
            (returned as log-probabilities); None: plain logits.

    Raises:
        ConfigError: an unknown ``tta`` mode.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> predict_logits(net, torch.zeros(2, 1, 2, 2), tta="flip").shape
        torch.Size([2, 3])
    """
    if tta not in TTA_MODES:
        raise ConfigError(f"tta must be None or 'flip', got {tta!r}.")
    autocast = precision.autocast(x.device) if precision is not None else contextlib.nullcontext()
    with autocast:
        logits = model(x).float()
        if tta == "flip":
            mirrored = model(x.flip(-1)).float()
            probs = (logits.softmax(dim=1) + mirrored.softmax(dim=1)) / 2
            logits = probs.clamp_min(1e-12).log()
    return logits


def eval_forward(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    precision: PrecisionMode | None = None,
    tta: str | None = None,
) -> Iterator[tuple[torch.Tensor, Any]]:
    """Yield ``(logits, batch)`` for every batch, in eval mode and without autograd.

    A batch is a tensor ``x`` or a tuple whose first item is ``x`` (``(x, y)`` from a loader).
    The model's train/eval mode is restored when the iteration ends, stops early or fails.

    Args:
        model: the network.
        batches: tensors or tuples ``(x, ...)`` already on the model's device.
        precision: autocast settings (None: the model's dtype).
        tta: ``None`` or ``"flip"`` (see :func:`predict_logits`).
    """
    with torch.no_grad(), eval_mode(model):
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield predict_logits(model, x, precision=precision, tta=tta), batch
