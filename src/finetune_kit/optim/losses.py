"""Loss functions looked up by name: cross entropy, focal loss, soft-target cross entropy.

Every loss is an ``nn.Module`` called as ``loss(logits, targets)`` with ``logits: (N, C)`` and
``targets`` either class indices ``(N,)`` or class probabilities ``(N, C)`` (one-hot, label
smoothed, or mixed by mixup/cutmix). ``soft_target_cross_entropy`` accepts only ``(N, C)``.

All losses take ``label_smoothing`` (the target distribution ``y`` becomes
``(1 - s) * y + s / C``, as in PyTorch) and ``reduction`` in ``{"mean", "sum", "none"}``;
``"none"`` returns the per-sample losses ``(N,)``, which the ``loss`` metric averages exactly.

Example:
    >>> import torch
    >>> from finetune_kit.optim import create_loss
    >>> loss_fn = create_loss("cross_entropy", label_smoothing=0.1)
    >>> logits = torch.zeros(2, 3)
    >>> round(loss_fn(logits, torch.tensor([0, 2])).item(), 4)
    1.0986
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.registry import Registry

__all__ = [
    "LOSSES",
    "CrossEntropyLoss",
    "FocalLoss",
    "SoftTargetCrossEntropy",
    "create_loss",
    "list_losses",
    "register_loss",
]

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")

_REDUCTIONS = ("mean", "sum", "none")


def register_loss(name: str, builder: Callable[..., nn.Module] | None = None, *, override: bool = False):
    """Register a loss builder (a class or function returning an ``nn.Module``) under ``name``.

    Args:
        name: lowercase snake_case key.
        builder: called with the user's options; omit it to use this as a decorator.
        override: replace an existing entry instead of raising.

    Returns:
        ``builder`` (or a decorator that registers and returns its argument).

    Raises:
        ConfigError: the name is malformed or already taken.

    Example:
        >>> from torch import nn
        >>> register_loss("my_l1", nn.L1Loss)
        <class 'torch.nn.modules.loss.L1Loss'>
        >>> LOSSES.unregister("my_l1")
    """
    return LOSSES.register(name, builder, override=override)


def list_losses(pattern: str = "*") -> list[str]:
    """Sorted names of the registered losses matching a shell-style glob.

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered losses that match.

    Example:
        >>> list_losses("*cross_entropy")
        ['cross_entropy', 'soft_target_cross_entropy']
    """
    return LOSSES.list(pattern)


def create_loss(name: str, **options: Any) -> nn.Module:
    """Build the loss registered as ``name`` with ``options``.

    Args:
        name: a name from :func:`list_losses`.
        **options: keyword arguments of that loss (e.g. ``label_smoothing=0.1``).

    Returns:
        The loss module.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an option is not accepted by that loss, or has a bad value.

    Example:
        >>> create_loss("focal", gamma=2.0)
        FocalLoss(gamma=2.0, reduction='mean')
    """
    return LOSSES.create(name, **options)


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}.")
    return reduction


def _check_smoothing(label_smoothing: float) -> float:
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
    return float(label_smoothing)


def _smooth(probs: Tensor, label_smoothing: float) -> Tensor:
    """Mix class probabilities ``(N, C)`` with the uniform distribution, as PyTorch does."""
    if label_smoothing == 0.0:
        return probs
    return probs * (1.0 - label_smoothing) + label_smoothing / probs.shape[1]


def _reduce(per_sample: Tensor, reduction: str, count: Tensor | None = None) -> Tensor:
    """Reduce per-sample losses; ``count`` (a tensor, no host sync) replaces N for the mean."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if count is None:
        return per_sample.mean()
    return per_sample.sum() / count.clamp(min=1)


def _check_logits(logits: Tensor, targets: Tensor, *, soft_only: bool = False) -> bool:
    """Validate shapes; return True when ``targets`` are class probabilities ``(N, C)``."""
    if logits.ndim != 2:
        raise ShapeError(f"logits must have shape (N, C); got {tuple(logits.shape)}.")
    soft = targets.ndim == 2
    if soft and targets.shape != logits.shape:
        raise ShapeError(
            f"soft targets must have the logits' shape {tuple(logits.shape)}; got {tuple(targets.shape)}."
        )
    if soft_only and not soft:
        raise ShapeError(
            "soft_target_cross_entropy needs class probabilities of shape (N, C) (e.g. from "
            f"mixup/cutmix); got targets of shape {tuple(targets.shape)}. Use 'cross_entropy' "
            "for class indices."
        )
    if not soft and targets.shape != logits.shape[:1]:
        raise ShapeError(
            f"class-index targets must have shape ({logits.shape[0]},); got {tuple(targets.shape)}."
        )
    return soft


def _check_per_class(weights: Tensor | None, num_classes: int, what: str, *, scalar_ok: bool = False) -> None:
    sizes = (1, num_classes) if scalar_ok else (num_classes,)
    if weights is not None and weights.numel() not in sizes:
        raise ShapeError(
            f"{what} has {weights.numel()} entries but the logits have {num_classes} classes; "
            "give one weight per class."
        )


def _class_weights(weights: Sequence[float] | Tensor | None) -> Tensor | None:
    if weights is None:
        return None
    tensor = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if bool((tensor < 0).any()):
        raise ConfigError("class weights must be non-negative.")
    return tensor


@LOSSES.register("cross_entropy")
class CrossEntropyLoss(nn.Module):
    """Cross entropy with label smoothing, class weights and an ignored target index.

    Matches ``torch.nn.functional.cross_entropy`` exactly (it is what runs), for class-index
    targets ``(N,)`` and for class-probability targets ``(N, C)``. With probabilities,
    ``ignore_index`` does not apply and ``class_weights`` weight each class's term.

    Args:
        label_smoothing: in ``[0, 1)``; mixes the target with the uniform distribution.
        class_weights: one non-negative weight per class, or None. With ``"mean"`` and index
            targets the result is the weighted mean (as in PyTorch).
        ignore_index: targets equal to it contribute nothing (index targets only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ConfigError: ``label_smoothing`` outside ``[0, 1)``, negative weights, bad reduction.

    Example:
        >>> import torch
        >>> loss = CrossEntropyLoss(class_weights=[1.0, 2.0])
        >>> round(loss(torch.zeros(2, 2), torch.tensor([0, 1])).item(), 4)
        0.6931
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.reduction = _check_reduction(reduction)
        self.register_buffer("class_weights", _class_weights(class_weights), persistent=False)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``logits: (N, C)`` against ``targets: (N,)`` or ``(N, C)``."""
        _check_logits(logits, targets)
        _check_per_class(self.class_weights, logits.shape[1], "class_weights")
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(
            logits,
            targets,
            weight=weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al., 2017) for multi-class classification.

    Per sample, with ``p = softmax(logits)`` and target distribution ``y`` (one-hot for index
    targets): ``loss = -sum_c alpha_c * y_c * (1 - p_c) ** gamma * log(p_c)``. With
    ``gamma=0`` and no ``alpha`` this is cross entropy. ``"mean"`` averages over the samples
    that are not ignored (unweighted by ``alpha``, unlike weighted cross entropy).

    Args:
        gamma: focusing parameter, ``>= 0``; larger values down-weight easy samples.
        alpha: None, one float for every class, or one weight per class.
        label_smoothing: in ``[0, 1)``; mixes the target with the uniform distribution.
        ignore_index: index targets equal to it contribute nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ConfigError: negative ``gamma`` or ``alpha``, bad reduction.

    Example:
        >>> import torch
        >>> loss = FocalLoss(gamma=0.0)
        >>> round(loss(torch.zeros(1, 4), torch.tensor([3])).item(), 4)
        1.3863
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"gamma must be >= 0; got {gamma}.")
        self.gamma = float(gamma)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.reduction = _check_reduction(reduction)
        self.register_buffer("alpha", _class_weights(alpha), persistent=False)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``logits: (N, C)`` against ``targets: (N,)`` or ``(N, C)``."""
        soft = _check_logits(logits, targets)
        _check_per_class(self.alpha, logits.shape[1], "alpha", scalar_ok=True)
        log_p = F.log_softmax(logits, dim=1)
        count = None
        if soft:
            y = _smooth(targets.to(log_p.dtype), self.label_smoothing)
        else:
            valid = targets != self.ignore_index
            safe = torch.where(valid, targets, torch.zeros_like(targets))
            y = F.one_hot(safe, logits.shape[1]).to(log_p.dtype)
            y = _smooth(y, self.label_smoothing) * valid.unsqueeze(1)
            count = valid.sum()
        terms = -y * (1.0 - log_p.exp()).pow(self.gamma) * log_p
        if self.alpha is not None:
            terms = terms * self.alpha.to(terms.dtype)
        return _reduce(terms.sum(dim=1), self.reduction, count)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


@LOSSES.register("soft_target_cross_entropy")
class SoftTargetCrossEntropy(nn.Module):
    """Cross entropy against class probabilities ``(N, C)``, as timm's SoftTargetCrossEntropy.

    Per sample: ``-sum_c y_c * log_softmax(logits)_c``. Use it with mixup/cutmix targets.

    Args:
        label_smoothing: in ``[0, 1)``; mixes the target with the uniform distribution
            (leave it 0 when mixup/cutmix already smoothed the targets).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ShapeError: (when called) the targets are not ``(N, C)``.

    Example:
        >>> import torch
        >>> loss = SoftTargetCrossEntropy()
        >>> round(loss(torch.zeros(1, 2), torch.tensor([[0.5, 0.5]])).item(), 4)
        0.6931
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.reduction = _check_reduction(reduction)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``logits: (N, C)`` against probabilities ``targets: (N, C)``."""
        _check_logits(logits, targets, soft_only=True)
        y = _smooth(targets.to(logits.dtype), self.label_smoothing)
        per_sample = -(y * F.log_softmax(logits, dim=1)).sum(dim=1)
        return _reduce(per_sample, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
