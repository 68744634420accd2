"""The plain network inside the wrappers a run puts around it (DDP, torch.compile, EMA).

Example:
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> unwrap_model(torch.nn.DataParallel(net)) is net
    True
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["unwrap_model"]

_PARALLEL = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def unwrap_model(model: Any) -> nn.Module:
    """The module inside DataParallel / DistributedDataParallel, ``torch.compile`` and EMA wrappers.

    Wrappers may be nested (a compiled DDP model); each layer is peeled off in turn. An EMA
    holder (:class:`~finetune_kit.optim.ModelEma`, not itself a module) yields its averaged copy.

    Args:
        model: a module, possibly wrapped, or an object holding one as ``.module``.

    Returns:
        The innermost ``nn.Module``.

    Example:
        >>> from finetune_kit.models import create_model
        >>> from finetune_kit.optim import ModelEma
        >>> net = create_model("lenet", num_classes=2, in_channels=1)
        >>> unwrap_model(nn.DataParallel(net)) is net  # the module to save, export or inspect
        True
        >>> ema = ModelEma(net, decay=0.99)
        >>> unwrap_model(ema) is ema.module, unwrap_model(ema) is net  # the averaged copy
        (True, False)
    """
    while True:
        if isinstance(model, _PARALLEL):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        elif not isinstance(model, nn.Module) and isinstance(getattr(model, "module", None), nn.Module):
            model = model.module  # an EMA holder
        else:
            return model
