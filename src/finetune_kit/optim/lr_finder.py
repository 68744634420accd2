"""The learning-rate range test (Smith, 2017; fastai's ``lr_find``).

Train for ``num_steps`` batches while the lr grows exponentially from ``start_lr`` to
``end_lr``, record the loss (exponentially smoothed, bias-corrected), stop early once it
exceeds ``diverge_factor`` times the best so far, then suggest an lr:

- ``steepest``: where the smoothed loss falls fastest against ``log(lr)`` (the first 10% and
  last 5% of the points are skipped, as they are noisy);
- ``valley`` (the default ``suggested``): fastai's rule, about halfway down the longest
  decreasing stretch of the curve; it is more conservative and more robust.

The model's weights and buffers, the optimizer state, the train/eval modes, the gradients and
torch's RNG state are restored afterwards: ``lr_find`` changes nothing but the clock.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from finetune_kit.optim import lr_find
    >>> _ = torch.manual_seed(0)
    >>> x, y = torch.randn(256, 4), torch.randint(0, 2, (256,))
    >>> result = lr_find(nn.Linear(4, 2), (x, y), num_steps=30, batch_size=32)
    >>> len(result.lrs) <= 30 and result.suggested is not None
    True
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import Dataset

from finetune_kit.analysis.lr_plot import plot_lr_find
from finetune_kit.data import DataBundle, make_loaders
from finetune_kit.errors import ConfigError, DataError
from finetune_kit.optim.losses import create_loss
from finetune_kit.optim.optimizers import create_optimizer

__all__ = ["LRFindResult", "lr_find", "steepest_lr", "valley_lr"]


@dataclass
class LRFindResult:
    """What the range test measured and suggests.

    Attributes:
        lrs: the lr of each step.
        losses: the smoothed, bias-corrected loss of each step.
        raw_losses: the batch loss of each step.
        suggestion_steepest: lr of steepest descent (None with too few points).
        suggestion_valley: fastai's valley lr (None with too few points).
        diverged: the loss blew up before ``end_lr`` was reached.
        plot_path: where the PNG was written, if anywhere.

    Example:
        >>> LRFindResult([1e-3, 1e-2], [1.0, 0.9], [1.0, 0.8], None, 1e-3).suggested
        0.001
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion_steepest: float | None
    suggestion_valley: float | None
    diverged: bool = False
    plot_path: Path | None = field(default=None)

    @property
    def suggested(self) -> float | None:
        """The valley suggestion (the steepest one when there is no valley)."""
        if self.suggestion_valley is not None:
            return self.suggestion_valley
        return self.suggestion_steepest

    def plot(self, path: str | Path) -> Path:
        """Write the loss-vs-lr curve to a PNG, like fastai's: log lr axis, the suggestion marked.

        The divergent tail (the steps after the loss climbs back above its start) is left out,
        so the loss axis shows the useful part of the curve
        (:func:`~finetune_kit.analysis.plot_lr_find`).

        Args:
            path: the PNG file to write (parents created).

        Returns:
            ``path``.

        Raises:
            ConfigError: matplotlib is not installed, or fewer than 2 steps were recorded.
        """
        _require_matplotlib()
        path = plot_lr_find(
            self.lrs, self.losses, path, suggestion=self.suggested, steepest=self.suggestion_steepest
        )
        self.plot_path = path
        return path


def _require_matplotlib() -> None:
    try:
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise ConfigError(
            "Plotting the lr finder curve needs matplotlib: "
            "pip install finetune-kit[plots] (or leave plot_path=None)."
        ) from None


def steepest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The lr where the loss falls fastest against ``log(lr)`` (None with < 5 points).

    Example:
        >>> steepest_lr([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0], [2.0, 1.9, 1.5, 0.5, 0.4, 3.0])
        0.01
    """
    n = len(losses)
    if n < 5:
        return None
    start, end = n // 10, n - n // 20
    grads = np.gradient(np.asarray(losses[start:end]), np.log10(lrs[start:end]))
    return float(lrs[start + int(np.argmin(grads))])


def valley_lr(lrs: list[float], losses: list[float]) -> float | None:
    """fastai's valley: halfway down the longest decreasing run (None with < 3 points).

    The run is the longest decreasing subsequence of the losses; the lr is taken at
    ``start + int(len / 3) + int(len / 6)`` (fastai's indexing, with its start off-by-one
    fixed).

    Example:
        >>> valley_lr([1e-4, 1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.8, 1.2, 0.6, 3.0])
        0.001
    """
    n = len(losses)
    if n < 3:
        return None
    longest = [1] * n  # longest decreasing subsequence ending at i
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[max_end] < longest[i]:
                max_end, max_start = i, i - longest[i] + 1
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def _batches(data: Any, batch_size: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """Cycle over the batches of a DataBundle's training split, a loader, or an ``(x, y)`` pair.

    A DataBundle is batched with ``batch_size`` (augmented as in training); a finetune_kit
    loader goes through one epoch after another; an ``(x, y)`` pair of tensors is shuffled into
    ``batch_size`` batches; any other iterable of ``(x, y)`` is cycled. A one-shot iterator is
    read once; the test then ends with the steps it got.
    """
    if isinstance(data, DataBundle):
        data = make_loaders(data, batch_size=batch_size, device=device).train
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        yield from _tensor_batches(data[0], data[1], batch_size)
        return
    if isinstance(data, Dataset) and not hasattr(data, "iter_epoch"):
        raise ConfigError(
            f"lr_find got a {type(data).__name__}, a dataset of single samples. Pass a "
            "DataBundle (from create_datasets), a DataLoader, or an (x, y) pair of tensors."
        )
    if not hasattr(data, "__iter__"):
        raise ConfigError(
            f"lr_find cannot take batches from a {type(data).__name__}. Pass a DataBundle (from "
            "create_datasets), a loader yielding (x, y) batches, or an (x, y) pair of tensors."
        )
    epochs = (data.iter_epoch(e) for e in itertools.count()) if hasattr(data, "iter_epoch") else None
    seen = False
    while True:
        empty = True
        for batch in next(epochs) if epochs is not None else data:
            empty, seen = False, True
            yield batch[0], batch[1]
        if empty and seen:
            return  # a one-shot iterator ran out: the test ends early
        if empty:
            raise DataError(
                "lr_find got no batches: the loader is empty or an exhausted "
                "iterator. Pass a DataLoader (or an (x, y) pair of tensors)."
            )


def _tensor_batches(x: Tensor, y: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise DataError(
            f"x and y must hold the same, non-zero number of samples; got {x.shape[0]} and {y.shape[0]}."
        )
    while True:
        order = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]


@dataclass
class _Snapshot:
    """Everything lr_find touches, copied so that it can be put back."""

    model_state: dict[str, Tensor]
    modes: dict[nn.Module, bool]
    grads: list[Tensor | None]
    rng: Tensor
    optimizer_state: dict[str, Any] | None


def _snapshot(model: nn.Module, optimizer: Optimizer | None) -> _Snapshot:
    opt_state = None
    if optimizer is not None:
        opt_state = copy.deepcopy(optimizer.state_dict())
    return _Snapshot(
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {m: m.training for m in model.modules()},
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        torch.get_rng_state(),
        opt_state,
    )


def _restore(model: nn.Module, optimizer: Optimizer | None, snap: _Snapshot) -> None:
    model.load_state_dict(snap.model_state)
    for module, mode in snap.modes.items():
        module.training = mode
    for param, grad in zip(model.parameters(), snap.grads, strict=True):
        param.grad = grad
    torch.set_rng_state(snap.rng)
    if optimizer is not None and snap.optimizer_state is not None:
        optimizer.load_state_dict(snap.optimizer_state)


def _run(
    model: nn.Module,
    batches: Iterator[tuple[Tensor, Tensor]],
    loss_fn: Callable,
    optimizer: Optimizer,
    lrs: np.ndarray,
    smooth: float,
    diverge_factor: float,
    device: torch.device,
) -> tuple[list[float], list[float], bool]:
    """The training loop of the range test; returns raw losses, smoothed losses, diverged."""
    raw: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    model.train()
    for i, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = float(lr) * group.get("lr_mult", 1.0)
        batch = next(batches, None)
        if batch is None:
            break
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        value = float(loss.detach())  # the range test reads every loss anyway
        if not math.isfinite(value):
            return raw, smoothed, True
        avg = smooth * avg + (1.0 - smooth) * value
        raw.append(value)
        smoothed.append(avg / (1.0 - smooth ** (i + 1)))
        best = min(best, smoothed[-1])
        if i > 0 and smoothed[-1] > diverge_factor * best:
            return raw, smoothed, True
    return raw, smoothed, False


def lr_find(
    model: nn.Module,
    loader_or_data: DataBundle | Iterable[Any] | tuple[Tensor, Tensor],
    *,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "cross_entropy",
    optimizer: str | Optimizer = "sgd",
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    device: str | torch.device | None = None,
    plot_path: str | Path | None = None,
    batch_size: int = 64,
    optimizer_options: Mapping[str, Any] | None = None,
) -> LRFindResult:
    """Run the exponential lr range test and suggest a learning rate.

    Args:
        model: the model to probe; it is left exactly as it was.
        loader_or_data: a :class:`~finetune_kit.DataBundle` (its training split, batched with
            ``batch_size`` and augmented as in training), a loader or any iterable of
            ``(x, y)`` batches (cycled when shorter than ``num_steps``), or an ``(x, y)`` pair
            of tensors (shuffled into ``batch_size``).
        loss: a loss name from :func:`~finetune_kit.optim.losses.list_losses` or a callable.
        optimizer: an optimizer name, or an optimizer over the model (its state is restored;
            group lrs follow ``lr * group["lr_mult"]``).
        start_lr: first lr.
        end_lr: last lr.
        num_steps: number of steps (batches).
        smooth: smoothing of the recorded loss, in ``[0, 1)``.
        diverge_factor: stop when the smoothed loss exceeds this times its minimum.
        device: where to run (default: where the model's parameters are).
        plot_path: write the curve to this PNG (needs matplotlib).
        batch_size: batch size for a DataBundle or an ``(x, y)`` pair of tensors.
        optimizer_options: keyword arguments for :func:`~finetune_kit.optim.create_optimizer`.

    Returns:
        The :class:`LRFindResult`.

    Raises:
        ConfigError: bad arguments, data that is not batches (e.g. a dataset of single
            samples), or ``plot_path`` without matplotlib installed.
        DataError: no batches.

    Example:
        >>> import finetune_kit as fk
        >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                           train_size=64, test_size=8)
        >>> net = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> result = lr_find(net, data, num_steps=8, batch_size=16)
        >>> len(result.lrs)
        8
        >>> net = torch.nn.Linear(2, 2)
        >>> before = net.weight.clone()
        >>> _ = lr_find(net, (torch.randn(64, 2), torch.randint(0, 2, (64,))), num_steps=10)
        >>> torch.equal(before, net.weight)
        True
    """
    if not 0 < start_lr < end_lr or num_steps < 2 or not 0 <= smooth < 1 or diverge_factor <= 1:
        raise ConfigError(
            "lr_find needs 0 < start_lr < end_lr, num_steps >= 2, 0 <= smooth < 1 and diverge_factor > 1."
        )
    if plot_path is not None:
        _require_matplotlib()
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    device = torch.device(device) if device is not None else home
    loss_fn = create_loss(loss) if isinstance(loss, str) else loss
    given = optimizer if isinstance(optimizer, Optimizer) else None
    snap = _snapshot(model, given)
    try:
        if device != home:
            model.to(device)
        opt = given or create_optimizer(model, str(optimizer), lr=start_lr, **dict(optimizer_options or {}))
        lrs = np.geomspace(start_lr, end_lr, num_steps)
        raw, smoothed, diverged = _run(
            model,
            _batches(loader_or_data, batch_size, device),
            loss_fn,
            opt,
            lrs,
            smooth,
            diverge_factor,
            device,
        )
    finally:
        if device != home:
            model.to(home)
        _restore(model, given, snap)
    tried = [float(v) for v in lrs[: len(smoothed)]]
    usable = len(smoothed) - 1 if diverged and len(smoothed) > 1 else len(smoothed)
    result = LRFindResult(
        tried,
        smoothed,
        raw,
        steepest_lr(tried[:usable], smoothed[:usable]),
        valley_lr(tried[:usable], smoothed[:usable]),
        diverged,
    )
    if plot_path is not None:
        result.plot(plot_path)
    return result
