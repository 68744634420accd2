"""Parts of a dataset: some of its classes (relabelled), at most N images per split.

For a quick try on part of a built-in dataset: ``create_datasets("mnist", limit=1000)`` keeps
1,000 training and 1,000 test images, with the class proportions of the full splits (stratified,
seeded); ``classes=["cat", "dog"]`` keeps two classes and relabels them 0 and 1 in that order.

Example:
    >>> import torch
    >>> t = torch.tensor([0] * 80 + [1] * 20)
    >>> picked = stratified_subset(t, 10, seed=0)
    >>> len(picked), int((t[picked] == 1).sum())
    (10, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from finetune_kit.data.bundle import DatasetParts
from finetune_kit.data.sampling import make_generator
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["select", "stratified_subset"]


def stratified_subset(targets: torch.Tensor, n: int, *, seed: int) -> torch.Tensor:
    """``n`` sample indices with the class proportions of ``targets`` (sorted, seeded).

    Args:
        targets: ``(N,)`` integer labels.
        n: how many to keep (all when ``n >= N``).
        seed: seeds the choice.

    Returns:
        Sorted int64 indices.
    """
    targets = torch.as_tensor(targets, dtype=torch.int64)
    total = int(targets.numel())
    if n >= total:
        return torch.arange(total, dtype=torch.int64)
    classes, counts = torch.unique(targets, return_counts=True)
    quotas = [int(c) * n / total for c in counts.tolist()]
    keep = [int(q) for q in quotas]
    by_remainder = sorted(range(len(keep)), key=lambda k: (-(quotas[k] - keep[k]), k))
    for k in by_remainder[: n - sum(keep)]:  # largest remainders: the total is exactly n
        keep[k] += 1
    generator = make_generator("subset", seed)
    picks = []
    for label, want in zip(classes.tolist(), keep, strict=True):
        members = torch.nonzero(targets == label).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:want]])
    return torch.sort(torch.cat(picks)).values


def _class_indices(wanted: Sequence[Any], names: list[str]) -> list[int]:
    indices = []
    for item in wanted:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
            indices.append(item)
        elif isinstance(item, str) and item in names:
            indices.append(names.index(item))
        else:
            raise ConfigError(
                f"classes: {item!r} is not a class of this dataset.{did_you_mean(str(item), names)} "
                f"Its classes are: {', '.join(names)} (or their indices 0..{len(names) - 1})."
            )
    if len(set(indices)) != len(indices) or not indices:
        raise ConfigError(f"classes must name at least one class, each once; got {list(wanted)!r}.")
    return indices


def _keep_classes(dataset: Any, kept: list[int], names: list[str]) -> Any:
    if dataset is None:
        return None
    relabel = torch.full((len(names),), -1, dtype=torch.int64)
    relabel[torch.tensor(kept)] = torch.arange(len(kept))
    new_labels = relabel[dataset.targets]
    index = torch.nonzero(new_labels >= 0).flatten()
    return ImageTensorDataset(
        dataset.images.index_select(0, index),
        new_labels.index_select(0, index),
        [names[k] for k in kept],
        source=dataset.source,
    )


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer (images per split), got {limit!r}.")
    return limit


def select(
    parts: DatasetParts, *, classes: Sequence[Any] | None, limit: int | None, seed: int
) -> DatasetParts:
    """Keep some classes (relabelled in the given order) and at most ``limit`` images per split.

    Args:
        parts: the dataset as its builder returned it.
        classes: class names or indices to keep, or None for all.
        limit: at most this many images in each split (train, test, and a validation set the
            dataset brings), stratified by class and seeded; None for all.
        seed: seeds the choice of images.

    Returns:
        The selected parts.

    Raises:
        ConfigError: an unknown class, a bad limit, or a dataset not held as tensors.
    """
    if classes is None and limit is None:
        return parts
    splits = {"train": parts.train, "val": parts.val, "test": parts.test}
    if not all(s is None or isinstance(s, ImageTensorDataset) for s in splits.values()):
        raise ConfigError("classes= and limit= need a dataset held in memory as ImageTensorDataset splits.")
    names = list(parts.class_names)
    if classes is not None:
        kept = _class_indices(list(classes), names)
        splits = {k: _keep_classes(s, kept, names) for k, s in splits.items()}
        names = [names[k] for k in kept]
    if limit is not None:
        n = _check_limit(limit)
        splits = {
            k: None if s is None else s.subset(stratified_subset(s.targets, n, seed=seed))
            for k, s in splits.items()
        }
    return DatasetParts(
        splits["train"], splits["test"], names, splits["val"], parts.default_preset, parts.source
    )
