"""Stratified, seeded, disjoint train/validation splits, and the split file kept with a run.

The validation split is taken from the training set only (the test set is never touched), with the
same class proportions, chosen by a generator seeded from ``seed`` alone. A run saves its split to
JSON so that resuming or re-evaluating it uses exactly the same images.

Example:
    >>> import torch
    >>> targets = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> train, val = stratified_split(targets, 0.5, seed=0)
    >>> len(train), len(val), targets[val].bincount().tolist()
    (5, 5, [2, 3])
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from finetune_kit.data.sampling import make_generator
from finetune_kit.errors import ConfigError, DataError
from finetune_kit.storage.atomic import atomic_write_text

__all__ = ["load_split", "save_split", "split_fingerprint", "stratified_split"]

SPLIT_FORMAT = 1


def _val_counts(counts: list[int], val_fraction: float) -> list[int]:
    """Per-class validation counts: largest-remainder rounding of ``count * val_fraction``.

    The total is ``round(N * val_fraction)``; each class keeps at least one training image.
    """
    quotas = [c * val_fraction for c in counts]
    chosen = [math.floor(q) for q in quotas]
    extra = math.floor(sum(counts) * val_fraction + 0.5) - sum(chosen)
    by_remainder = sorted(range(len(counts)), key=lambda k: (-(quotas[k] - chosen[k]), k))
    for k in by_remainder[: max(extra, 0)]:
        chosen[k] += 1
    return [min(v, max(c - 1, 0)) for v, c in zip(chosen, counts, strict=True)]


def stratified_split(
    targets: torch.Tensor, val_fraction: float, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into train and validation with the class proportions kept.

    Args:
        targets: ``(N,)`` integer labels of the full training set.
        val_fraction: share of each class held out, in ``[0, 1)``.
        seed: seeds the choice; the same (targets, fraction, seed) always gives the same split.

    Returns:
        ``(train_indices, val_indices)``: sorted, disjoint int64 tensors covering ``0..N-1``.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)``.

    Example:
        >>> import torch
        >>> t = torch.arange(20) % 2
        >>> a = stratified_split(t, 0.2, seed=1)
        >>> b = stratified_split(t, 0.2, seed=1)
        >>> torch.equal(a[1], b[1]), len(a[1])
        (True, 4)
    """
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ConfigError(
            f"val_fraction={val_fraction!r} is out of range: expected a number in [0, 1), "
            "e.g. 0.1 to hold out 10% of the training set (0 for no validation split)."
        )
    targets = torch.as_tensor(targets, dtype=torch.int64)
    n = int(targets.numel())
    if val_fraction == 0 or n == 0:
        return torch.arange(n, dtype=torch.int64), torch.empty(0, dtype=torch.int64)
    _, counts = torch.unique(targets, return_counts=True)
    wanted = _val_counts(counts.tolist(), float(val_fraction))
    generator = make_generator("split", seed)
    order = torch.argsort(targets, stable=True)
    starts = [0, *torch.cumsum(counts, 0).tolist()]
    picks = []
    for k, want in enumerate(wanted):
        members = order[starts[k] : starts[k + 1]]
        perm = torch.randperm(len(members), generator=generator)
        picks.append(members[perm[:want]])
    val = torch.sort(torch.cat(picks)).values
    mask = torch.ones(n, dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val


def split_fingerprint(targets: torch.Tensor) -> str:
    """A short hash of the training labels, to tell whether a split file fits a dataset.

    Example:
        >>> import torch
        >>> len(split_fingerprint(torch.tensor([0, 1, 1])))
        16
    """
    data = torch.as_tensor(targets, dtype=torch.int64).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def save_split(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a split record as JSON, atomically (temp file + rename).

    Args:
        path: destination file.
        record: dataset name, seed, val_fraction, n_train_total, fingerprint and the index lists.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> record = {"dataset": "d", "seed": 0, "n_train_total": 3, "fingerprint": "f",
        ...           "train_indices": [0, 2], "val_indices": [1]}
        >>> p = save_split(tempfile.mkdtemp() + "/s.json", record)
        >>> load_split(p, dataset="d", n_train_total=3, fingerprint="f")[1].tolist()
        [1]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"format": SPLIT_FORMAT, **record}))
    return path


def _index_tensor(path: Path, record: dict[str, Any], key: str, n: int) -> torch.Tensor:
    values = record.get(key)
    integers = isinstance(values, list) and all(type(v) is int for v in values)
    if not integers:
        raise DataError(
            f"Split file {path}: {key!r} must be a list of integers. Delete it to recompute the split."
        )
    if values and (min(values) < 0 or max(values) >= n):
        raise DataError(
            f"Split file {path}: {key} has an index outside [0, {n}); it was written for a "
            "different dataset. Delete it to recompute the split."
        )
    return torch.tensor(values, dtype=torch.int64)


def load_split(
    path: str | Path, *, dataset: str, n_train_total: int, fingerprint: str
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Read a split file and check that it belongs to this dataset.

    Args:
        path: the JSON file written by :meth:`DataBundle.save_split`.
        dataset: the dataset name it must name.
        n_train_total: size of the full training set it must match.
        fingerprint: :func:`split_fingerprint` of the training labels it must match.

    Returns:
        ``(train_indices, val_indices, record)``.

    Raises:
        DataError: unreadable JSON, a different dataset/size/labels, indices out of range,
            duplicated or shared between train and validation.

    Example:
        >>> import tempfile
        >>> load_split(tempfile.mkdtemp() + "/none.json", dataset="d", n_train_total=1,
        ...            fingerprint="f")
        Traceback (most recent call last):
        ...
        finetune_kit.errors.DataError: Cannot read split file ...
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DataError(
            f"Cannot read split file {path}: {reason}. Delete it to recompute the split."
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"Split file {path} does not hold a JSON object.")
    checks = [("dataset", dataset), ("n_train_total", n_train_total), ("fingerprint", fingerprint)]
    for key, expected in checks:
        if record.get(key) != expected:
            raise DataError(
                f"Split file {path} was made for other data ({key} is {record.get(key)!r}, these "
                f"data give {expected!r}): the data changed since, or data.root points elsewhere. "
                "Point data.root (--data-root) at the data the split was made for."
            )
    train = _index_tensor(path, record, "train_indices", n_train_total)
    val = _index_tensor(path, record, "val_indices", n_train_total)
    both = torch.cat([train, val])
    if torch.unique(both).numel() != both.numel():
        raise DataError(
            f"Split file {path} repeats an index or shares one between train and validation. "
            "Delete it to recompute the split."
        )
    return train, val, record
