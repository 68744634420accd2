"""Content fingerprints of datasets: do two runs (or a run and an evaluation) see the same data?

A run stores the fingerprints of its training and test sets with its checkpoints; evaluating or
resuming it on other data (another dataset, another version of a folder, the wrong ``root``) is
refused instead of silently reporting numbers for data the model never saw.

Example:
    >>> import torch
    >>> from finetune_kit.data.tensor_dataset import ImageTensorDataset
    >>> a = ImageTensorDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    >>> b = ImageTensorDataset(torch.ones(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    >>> content_fingerprint(a) == content_fingerprint(a), content_fingerprint(a) == content_fingerprint(b)
    (True, False)
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import DataError

__all__ = ["check_same_data", "content_fingerprint"]


def content_fingerprint(dataset: Any) -> str:
    """A short hash of a split's images and labels (labels and size for datasets read lazily).

    Args:
        dataset: an :class:`ImageTensorDataset`, or any dataset with ``targets``.

    Returns:
        16 hex digits; empty for None.
    """
    if dataset is None:
        return ""
    digest = hashlib.blake2b(digest_size=8)
    if isinstance(dataset, ImageTensorDataset):
        digest.update(repr((tuple(dataset.images.shape), str(dataset.images.dtype))).encode())
        digest.update(dataset.images.contiguous().numpy().tobytes())
        targets = dataset.targets
    else:
        targets = getattr(dataset, "targets", None)
        digest.update(str(len(dataset)).encode())
    if targets is not None:
        digest.update(torch.as_tensor(targets, dtype=torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_same_data(saved: dict[str, Any], current: dict[str, Any], *, where: str) -> None:
    """Refuse data other than the data a run was trained on.

    Compares the dataset name, the class names and the content fingerprints of two
    ``DataBundle.meta()`` dicts (a fingerprint missing on either side is not compared: runs
    written before fingerprints existed still load).

    Args:
        saved: the meta stored with the run (its checkpoint's ``data_meta``).
        current: the meta of the data at hand.
        where: the checkpoint, for the message.

    Raises:
        DataError: naming what differs and how to point at the run's data.

    Example:
        >>> meta = {"name": "fake", "class_names": ["a"], "train_fingerprint": "1", "test_fingerprint": "2"}
        >>> check_same_data(meta, dict(meta), where="run/last.ckpt")
    """
    problems = []
    if saved.get("name") != current.get("name"):
        problems.append(f"dataset {current.get('name')!r} instead of {saved.get('name')!r}")
    if list(saved.get("class_names", [])) != list(current.get("class_names", [])):
        problems.append("other class names")
    for split in ("train", "test"):
        a, b = saved.get(f"{split}_fingerprint"), current.get(f"{split}_fingerprint")
        if a and b and a != b:
            problems.append(f"other {split} images or labels (fingerprint {b}, the run's is {a})")
    if problems:
        raise DataError(
            f"The data found are not the data {where} was trained on: {'; '.join(problems)}. "
            "Point data.root (--data-root) at the run's dataset, or start a new run on these data."
        )
