"""Mixing samples within a batch: mixup, cutmix and the timm-style switcher.

Mixup and cutmix work on the whole batch on its device, as timm's ``Mixup`` in ``"batch"``
mode: each sample is mixed with the sample at the mirrored position (``x.flip(0)``; the
loader already shuffles), with one ``lam ~ Beta(alpha, alpha)`` per batch. They return the
mixed images and soft targets ``(N, C)`` for ``soft_target_cross_entropy``. ``lam`` and the
cutmix box are drawn on the host from ``generator`` (or torch's global RNG), so nothing waits
for the device.

Example:
    >>> import torch
    >>> from finetune_kit.data.mixing import mixup
    >>> x, y = torch.ones(4, 1, 2, 2), torch.tensor([0, 1, 2, 3])
    >>> xm, ym = mixup(x, y, alpha=0.2, num_classes=4, lam=0.7)
    >>> [round(v, 3) for v in ym[0].tolist()]
    [0.7, 0.0, 0.0, 0.3]
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from finetune_kit.errors import ConfigError, ShapeError

__all__ = ["MixupCutmix", "cutmix", "cutmix_box", "mixup", "soft_targets"]


def _rng(generator: torch.Generator | None) -> np.random.Generator:
    """A NumPy RNG seeded from ``generator`` (or torch's global CPU RNG): reproducible, on host."""
    seed = torch.randint(0, 2**62, (1,), generator=generator).item()
    return np.random.default_rng(seed)


def soft_targets(y: Tensor, num_classes: int, label_smoothing: float = 0.0) -> Tensor:
    """Class indices ``(N,)`` or probabilities ``(N, C)`` -> smoothed probabilities ``(N, C)``.

    With smoothing ``s`` every class gets ``s / C`` and the target class ``1 - s + s / C``
    (timm's convention, equal to PyTorch's label smoothing).

    Args:
        y: class indices or probabilities.
        num_classes: ``C``.
        label_smoothing: ``s`` in ``[0, 1)``.

    Returns:
        Float probabilities ``(N, C)`` on ``y``'s device.

    Raises:
        ShapeError: ``y`` is neither ``(N,)`` nor ``(N, C)``.

    Example:
        >>> soft_targets(torch.tensor([1]), 2, 0.1).tolist()
        [[0.05000000074505806, 0.949999988079071]]
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
    if y.ndim == 1 and not y.is_floating_point():
        probs = F.one_hot(y, num_classes).float()
    elif y.ndim == 2 and y.shape[1] == num_classes:
        probs = y.float()
    else:
        raise ShapeError(
            f"targets must be classes (N,) or probabilities (N, {num_classes}); "
            f"got {y.dtype} {tuple(y.shape)}."
        )
    return probs * (1.0 - label_smoothing) + label_smoothing / num_classes


def _check(x: Tensor, alpha: float) -> None:
    if x.ndim < 2:
        raise ShapeError(f"x must be a batch (N, ...); got shape {tuple(x.shape)}.")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0; got {alpha}.")


def mixup(
    x: Tensor,
    y: Tensor,
    alpha: float,
    num_classes: int,
    generator: torch.Generator | None = None,
    *,
    label_smoothing: float = 0.0,
    lam: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x.flip(0)``, targets likewise.

    Args:
        x: images ``(N, C, H, W)`` (any ``(N, ...)`` works).
        y: class indices ``(N,)`` or probabilities ``(N, num_classes)``.
        alpha: ``lam ~ Beta(alpha, alpha)``, ``alpha > 0``.
        num_classes: number of classes.
        generator: a CPU ``torch.Generator`` for reproducible draws.
        label_smoothing: applied to the targets before mixing.
        lam: use this ``lam`` instead of drawing one.

    Returns:
        ``(x_mixed, targets)`` with ``targets: (N, num_classes)`` float.

    Raises:
        ConfigError: ``alpha <= 0``.
        ShapeError: bad shapes.

    Example:
        >>> x = torch.tensor([[0.0], [1.0]])
        >>> mixup(x, torch.tensor([0, 1]), 1.0, 2, lam=0.25)[0].flatten().tolist()
        [0.75, 0.25]
    """
    _check(x, alpha)
    if lam is None:
        lam = float(_rng(generator).beta(alpha, alpha))
    y_soft = soft_targets(y, num_classes, label_smoothing)
    mixed = x * lam + x.flip(0) * (1.0 - lam)
    return mixed, y_soft * lam + y_soft.flip(0) * (1.0 - lam)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box covering about ``1 - lam`` of the image, centred uniformly (clipped at edges).

    Returns:
        ``(top, bottom, left, right)`` slice bounds.

    Example:
        >>> cutmix_box(10, 10, 0.0, np.random.default_rng(0))[1] > 0
        True
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def cutmix(
    x: Tensor,
    y: Tensor,
    alpha: float,
    num_classes: int,
    generator: torch.Generator | None = None,
    *,
    label_smoothing: float = 0.0,
    lam: float | None = None,
) -> tuple[Tensor, Tensor]:
    """CutMix (Yun et al., 2019): paste a box of ``x.flip(0)`` into ``x``.

    The target weight is corrected to the box's real area (it is clipped at the borders):
    ``lam = 1 - box_area / (H * W)``, as timm's ``correct_lam``.

    Args:
        x: images ``(N, C, H, W)``.
        y: class indices ``(N,)`` or probabilities ``(N, num_classes)``.
        alpha: ``lam ~ Beta(alpha, alpha)``, ``alpha > 0``.
        num_classes: number of classes.
        generator: a CPU ``torch.Generator`` for reproducible draws.
        label_smoothing: applied to the targets before mixing.
        lam: use this ``lam`` (before correction) instead of drawing one.

    Returns:
        ``(x_mixed, targets)`` with ``targets: (N, num_classes)`` float.

    Raises:
        ConfigError: ``alpha <= 0``.
        ShapeError: ``x`` is not ``(N, C, H, W)``.

    Example:
        >>> x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 4, 4)
        >>> xm, ym = cutmix(x, torch.tensor([0, 1]), 1.0, 2, lam=0.75)
        >>> float(ym[0, 1]) == float((xm[0] == 1).float().mean())
        True
    """
    _check(x, alpha)
    if x.ndim != 4:
        raise ShapeError(f"cutmix needs images (N, C, H, W); got shape {tuple(x.shape)}.")
    rng = _rng(generator)
    if lam is None:
        lam = float(rng.beta(alpha, alpha))
    height, width = x.shape[-2:]
    top, bottom, left, right = cutmix_box(height, width, lam, rng)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x.flip(0)[:, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / float(height * width)
    y_soft = soft_targets(y, num_classes, label_smoothing)
    return mixed, y_soft * lam + y_soft.flip(0) * (1.0 - lam)


class MixupCutmix:
    """Mixup or cutmix per batch, as timm's ``Mixup`` (mode ``"batch"``).

    With probability ``prob`` a batch is mixed; then cutmix is chosen with probability
    ``switch_prob`` when both alphas are > 0 (else whichever is > 0). Unmixed batches still get
    smoothed one-hot targets, so the loss is always ``soft_target_cross_entropy``.

    Args:
        mixup_alpha: mixup's Beta parameter (0 disables mixup).
        cutmix_alpha: cutmix's Beta parameter (0 disables cutmix).
        prob: probability of mixing a batch.
        switch_prob: probability of cutmix when both are enabled.
        label_smoothing: label smoothing of the targets.
        num_classes: number of classes.
        generator: a CPU ``torch.Generator`` for reproducible draws.

    Raises:
        ConfigError: negative alphas or probabilities outside ``[0, 1]``.

    Example:
        >>> mix = MixupCutmix(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=10)
        >>> x, y = mix(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
        >>> tuple(y.shape), round(float(y.sum()), 3)
        ((8, 10), 8.0)
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        *,
        num_classes: int,
        generator: torch.Generator | None = None,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError("mixup_alpha and cutmix_alpha must be >= 0.")
        if not (0.0 <= prob <= 1.0 and 0.0 <= switch_prob <= 1.0):
            raise ConfigError("prob and switch_prob must be in [0, 1].")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mix one batch: returns ``(x_mixed, soft_targets)``."""
        rng = _rng(self.generator)
        enabled = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if not enabled or rng.random() >= self.prob:
            return x, soft_targets(y, self.num_classes, self.label_smoothing)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        op = cutmix if use_cutmix else mixup
        return op(
            x, y, alpha, self.num_classes, self.generator, label_smoothing=self.label_smoothing, lam=lam
        )

    def __repr__(self) -> str:
        return (
            f"MixupCutmix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"prob={self.prob}, switch_prob={self.switch_prob}, "
            f"label_smoothing={self.label_smoothing}, num_classes={self.num_classes})"
        )
