"""The dataset registry and ``create_datasets``: from a name to a :class:`DataBundle`.

A dataset is a builder function registered under a name. It is called with its own options and
those of ``root=``, ``download=``, ``seed=`` and ``channels=`` that its signature accepts (all of
them when it takes ``**kwargs``), and returns :class:`DatasetParts`.
:func:`create_datasets` then cuts the validation split (stratified, seeded, or read back from a
split file), computes the training-split statistics and resolves the transform preset.

Registering your own dataset::

    import torch
    import finetune_kit as fk
    from finetune_kit.data import DatasetParts, ImageTensorDataset

    @fk.register_dataset("my_scans")
    def my_scans(*, root=None, download=True, size=64):
        images = torch.load(f"{root}/scans.pt")          # (N, 1, H, W) uint8
        labels = torch.load(f"{root}/labels.pt")         # (N,) int64
        classes = ["healthy", "lesion"]
        train = ImageTensorDataset(images[:800], labels[:800], classes, source=root)
        test = ImageTensorDataset(images[800:], labels[800:], classes, source=root)
        return DatasetParts(train=train, test=test, class_names=classes)

    data = fk.create_datasets("my_scans", root="/data/scans", val_fraction=0.1)

Example:
    >>> from finetune_kit.data import list_datasets
    >>> list_datasets()
    ['cifar10', 'cifar100', 'fake', 'fashion_mnist', 'image_folder', 'mnist', 'tensors']
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from finetune_kit.data.bundle import DataBundle, DatasetParts
from finetune_kit.data.fingerprint import content_fingerprint
from finetune_kit.data.presets import Preset, normalization_stats, resolve_preset
from finetune_kit.data.splits import load_split, split_fingerprint, stratified_split
from finetune_kit.data.stats import channel_stats
from finetune_kit.data.subsets import select
from finetune_kit.data.tensor_dataset import ImageTensorDataset, convert_channels
from finetune_kit.errors import ConfigError, DataError
from finetune_kit.registry import Registry, accepted_options
from finetune_kit.runtime.reproducibility import check_seed

__all__ = [
    "DATASETS",
    "DatasetBuilder",
    "adapt_to_weights",
    "create_datasets",
    "list_datasets",
    "register_dataset",
]

log = logging.getLogger("finetune_kit.data")

DatasetBuilder = Callable[..., DatasetParts]
# Arguments create_datasets passes to every builder that takes them; the rest are its options.
_COMMON = ("root", "download", "seed", "channels")
DATASETS: Registry[DatasetBuilder] = Registry(
    "dataset", options=lambda builder: accepted_options(builder, reserved=_COMMON)
)


def register_dataset(name: str, builder: DatasetBuilder | None = None, *, override: bool = False):
    """Register a dataset builder under ``name`` (usable as a decorator).

    The builder is called as ``builder(root=..., download=..., **options)`` and must return
    :class:`DatasetParts`. See the module docs for a full example.

    Args:
        name: lowercase snake_case name.
        builder: the function; omit it to use ``register_dataset`` as a decorator.
        override: replace an existing registration on purpose.

    Returns:
        The builder (or a decorator).

    Raises:
        ConfigError: a bad or taken name.

    Example:
        >>> import torch
        >>> from finetune_kit.data import DatasetParts, ImageTensorDataset, create_datasets
        >>> @register_dataset("doc_demo")
        ... def doc_demo(*, root=None, download=True):
        ...     ds = ImageTensorDataset(torch.zeros(10, 1, 4, 4, dtype=torch.uint8),
        ...                             torch.arange(10) % 2, ["even", "odd"])
        ...     return DatasetParts(train=ds, test=ds, class_names=ds.class_names)
        >>> create_datasets("doc_demo", val_fraction=0.2).class_names
        ['even', 'odd']
        >>> DATASETS.unregister("doc_demo")
    """
    return DATASETS.register(name, builder, override=override)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered datasets matching a shell-style glob.

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered datasets that match.

    Example:
        >>> list_datasets("*mnist")
        ['fashion_mnist', 'mnist']
    """
    return DATASETS.list(pattern)


def _call_builder(name: str, builder: DatasetBuilder, **kwargs: Any) -> DatasetParts:
    """Call a builder with the common arguments it accepts and its own options."""
    DATASETS.check_options(name, {k: v for k, v in kwargs.items() if k not in _COMMON})
    accepted = accepted_options(builder)
    if accepted is not None:  # the common arguments go only to builders that take them
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    parts = builder(**kwargs)
    if not isinstance(parts, DatasetParts):
        raise ConfigError(
            f"The builder of dataset {name!r} returned {type(parts).__name__}; it must return "
            "finetune_kit.data.DatasetParts(train=..., test=..., class_names=...)."
        )
    return parts


def _targets(dataset: Any, name: str) -> torch.Tensor:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise DataError(
            f"The training set of {name!r} has no .targets; splits need the labels. Hold the "
            "data in an ImageTensorDataset or give the dataset a .targets tensor."
        )
    return torch.as_tensor(targets, dtype=torch.int64)


def _subset(dataset: Any, indices: torch.Tensor) -> Any:
    if hasattr(dataset, "subset"):
        return dataset.subset(indices)
    return torch.utils.data.Subset(dataset, indices.tolist())


def _shape_of(dataset: Any) -> tuple[int, tuple[int, int]]:
    if isinstance(dataset, ImageTensorDataset):
        return dataset.in_channels, dataset.image_size
    image = dataset[0][0]
    return int(image.shape[0]), (int(image.shape[1]), int(image.shape[2]))


def _split(
    name: str, train_full: Any, *, val_fraction: float, seed: int, split_file: str | Path | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    targets = _targets(train_full, name)
    fingerprint = split_fingerprint(targets)
    if split_file is not None and Path(split_file).exists():
        train_idx, val_idx, record = load_split(
            split_file, dataset=name, n_train_total=len(targets), fingerprint=fingerprint
        )
        if (record.get("seed"), record.get("val_fraction")) != (seed, val_fraction):
            log.warning(
                "Using the split in %s (seed=%s, val_fraction=%s), not seed=%s, val_fraction=%s",
                split_file,
                record.get("seed"),
                record.get("val_fraction"),
                seed,
                val_fraction,
            )
        return train_idx, val_idx, fingerprint
    train_idx, val_idx = stratified_split(targets, val_fraction, seed=seed)
    if val_fraction > 0 and val_idx.numel() == 0:
        raise DataError(
            f"val_fraction={val_fraction} of the {len(targets)} training images of {name!r} "
            "leaves no validation images. Pass a larger val_fraction, or val_fraction=0."
        )
    return train_idx, val_idx, fingerprint


def _stats(dataset: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if isinstance(dataset, ImageTensorDataset):
        return channel_stats(dataset.images)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return channel_stats(images)


def _convert(parts: DatasetParts, channels: int | None) -> DatasetParts:
    if channels is None:
        return parts
    splits = [parts.train, parts.val, parts.test]
    if not all(s is None or isinstance(s, ImageTensorDataset) for s in splits):
        raise ConfigError("channels= needs a dataset held as ImageTensorDataset splits.")
    train, val, test = (None if s is None else convert_channels(s, channels) for s in splits)
    return DatasetParts(train, test, parts.class_names, val, parts.default_preset, parts.source)


def _train_val(
    name: str, parts: DatasetParts, *, val_fraction: float, seed: int, split_file: str | Path | None
) -> tuple[Any, Any, torch.Tensor, torch.Tensor | None, str]:
    """(train, val, train_indices, val_indices, fingerprint): the dataset's own validation set,
    or one cut from the training set."""
    if parts.val is not None:
        log.info("%s brings its own validation set; val_fraction=%s is unused", name, val_fraction)
        fingerprint = split_fingerprint(_targets(parts.train, name))
        all_train = torch.arange(len(parts.train), dtype=torch.int64)
        return parts.train, parts.val, all_train, None, fingerprint
    train_idx, val_idx, fingerprint = _split(
        name, parts.train, val_fraction=val_fraction, seed=seed, split_file=split_file
    )
    val = _subset(parts.train, val_idx) if val_idx.numel() else None
    return _subset(parts.train, train_idx), val, train_idx, val_idx, fingerprint


def create_datasets(
    name: str,
    *,
    root: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    preset: str | Preset = "auto",
    download: bool = True,
    split_file: str | Path | None = None,
    weights_meta: Mapping[str, Any] | None = None,
    channels: int | None = None,
    classes: Sequence[str | int] | None = None,
    limit: int | None = None,
    **options: Any,
) -> DataBundle:
    """Build a registered dataset: read it, split off validation, choose transforms.

    Args:
        name: a registered dataset (:func:`list_datasets`).
        root: a folder to search first (for ``image_folder``: the folder itself).
        val_fraction: share of the training set held out for validation, stratified; 0 for none.
        seed: seeds the validation split (the test set is never touched).
        preset: transform preset name, a :class:`Preset`, or ``"auto"``.
        download: allow downloading missing files; False never touches the network.
        split_file: a JSON split to reuse when the file exists (see :meth:`DataBundle.save_split`).
        weights_meta: the model's weight metadata (``mean``, ``std``, ``input_size``) so
            ``"auto"`` can pick ImageNet preprocessing for ImageNet-pretrained weights.
        channels: convert images to 1 (grayscale) or 3 (RGB) channels, e.g. to feed a
            grayscale dataset to an RGB model; None keeps them as stored.
        classes: keep only these classes (names or indices), relabelled 0, 1, ... in this
            order; None keeps all.
        limit: keep at most this many images in each split (train, test, and a validation
            set the dataset brings), stratified by class and seeded with ``seed``, for a quick
            try on part of a dataset; None keeps all.
        options: dataset-specific options (e.g. ``train_size`` for ``fake``).

    Returns:
        A :class:`DataBundle`.

    Raises:
        UnknownNameError: ``name`` or ``preset`` is not registered.
        ConfigError: an unknown option or a bad value.
        DataError: files not found, unreadable or inconsistent.

    Example:
        >>> data = create_datasets("fake", train_size=100, test_size=20, seed=1)
        >>> len(data.train) + len(data.val), data.class_names[0]
        (100, 'fake_0')
    """
    builder = DATASETS.get(name)
    check_seed(seed)
    parts = _call_builder(
        name, builder, root=root, download=download, seed=seed, channels=channels, **options
    )
    parts = select(_convert(parts, channels), classes=classes, limit=limit, seed=seed)
    in_channels, image_size = _shape_of(parts.train)
    train, val, train_idx, val_idx, fingerprint = _train_val(
        name, parts, val_fraction=val_fraction, seed=seed, split_file=split_file
    )
    chosen = resolve_preset(
        preset,
        weights_meta=weights_meta,
        default=parts.default_preset,
        in_channels=in_channels,
        image_size=image_size,
    )
    dataset_stats = _stats(train)
    origin = {
        "dataset": name,
        "root": None if root is None else str(Path(root).expanduser().resolve()),
        "download": download,
        "channels": channels,
        "classes": None if classes is None else list(classes),
        "limit": limit,
        "preset": preset if isinstance(preset, str) else preset.name,
        "options": dict(options) if _storable(options) else None,
    }
    content = {"train": content_fingerprint(parts.train), "test": content_fingerprint(parts.test)}
    mean, std = normalization_stats(
        chosen, dataset_stats=dataset_stats, weights_meta=weights_meta, in_channels=in_channels
    )
    return DataBundle(
        name=name,
        train=train,
        val=val,
        test=parts.test,
        num_classes=len(parts.class_names),
        in_channels=in_channels,
        image_size=image_size,
        class_names=list(parts.class_names),
        mean=mean,
        std=std,
        preset=chosen,
        train_indices=train_idx,
        val_indices=val_idx,
        dataset_mean=dataset_stats[0],
        dataset_std=dataset_stats[1],
        seed=seed,
        val_fraction=val_fraction,
        n_train_total=len(parts.train),
        fingerprint=fingerprint,
        source=parts.source,
        origin=origin,
        content=content,
    )


def _storable(value: Any) -> bool:
    """Whether ``value`` can be written to a TOML config (and so rebuilt from it)."""
    if isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_storable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _storable(v) for k, v in value.items())
    return False


def adapt_to_weights(
    bundle: DataBundle, weights_meta: Mapping[str, Any] | None, *, preset: str | Preset = "auto"
) -> DataBundle:
    """Re-choose the preset and normalisation of ``bundle`` for a model's pretrained weights.

    The datasets are built before the model (the model needs the number of classes), so an
    ``"auto"`` preset is chosen again once the weights are known: ImageNet-pretrained weights
    at 224 pixels get the ImageNet recipe and statistics. An explicit preset is kept.

    Args:
        bundle: the datasets.
        weights_meta: ``mean``, ``std``, ``input_size`` of the weights (None: no weights).
        preset: the preset the user asked for.

    Returns:
        ``bundle`` itself when nothing changes, else a copy with the new preset, mean and std.

    Example:
        >>> b = create_datasets("fake", train_size=20, test_size=4)
        >>> adapt_to_weights(b, {"input_size": (224, 224)}).preset.name
        'imagenet'
    """
    if preset != "auto" or not weights_meta:
        return bundle
    chosen = resolve_preset(
        "auto",
        weights_meta=weights_meta,
        default=bundle.preset.name,
        in_channels=bundle.in_channels,
        image_size=bundle.image_size,
    )
    if chosen.name == bundle.preset.name:
        return bundle
    mean, std = normalization_stats(
        chosen,
        dataset_stats=(bundle.dataset_mean, bundle.dataset_std),
        weights_meta=weights_meta,
        in_channels=bundle.in_channels,
    )
    return dataclasses.replace(bundle, preset=chosen, mean=mean, std=std)
