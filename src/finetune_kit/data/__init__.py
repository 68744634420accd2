"""Datasets, readers, splits, transform presets and loaders.

The entry points: :func:`create_datasets` (a name -> :class:`DataBundle`), :func:`make_loaders`
(a bundle -> train/val/test loaders on the device or DataLoader path), :func:`list_datasets`,
:func:`register_dataset`.

Example:
    >>> from finetune_kit.data import create_datasets, make_loaders
    >>> data = create_datasets("fake", train_size=40, test_size=8)
    >>> loaders = make_loaders(data, batch_size=8)
    >>> x, y = next(loaders.train.iter_epoch(0))
    >>> x.dtype, tuple(x.shape), y.dtype
    (torch.float32, (8, 3, 32, 32), torch.int64)
"""

from __future__ import annotations

from finetune_kit.data import builtin as _builtin  # noqa: F401  (registers the file datasets)
from finetune_kit.data import image_folder as _image_folder  # noqa: F401  (registers image_folder)
from finetune_kit.data import tensors as _tensors  # noqa: F401  (registers tensors and fake)
from finetune_kit.data.augment import BatchTransform, eval_transform_from_meta
from finetune_kit.data.bundle import DataBundle, DatasetParts, check_compatible
from finetune_kit.data.cifar import CifarSplit, read_cifar
from finetune_kit.data.device_loader import DeviceLoader
from finetune_kit.data.idx import read_idx, read_idx_pair
from finetune_kit.data.images import load_images
from finetune_kit.data.loaders import Loaders, default_memory_budget, make_loaders
from finetune_kit.data.presets import PRESETS, Preset, get_preset, list_presets
from finetune_kit.data.registry import (
    DATASETS,
    adapt_to_weights,
    create_datasets,
    list_datasets,
    register_dataset,
)
from finetune_kit.data.splits import stratified_split
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.data.torch_loader import TorchLoader

__all__ = [
    "DATASETS",
    "PRESETS",
    "BatchTransform",
    "CifarSplit",
    "DataBundle",
    "DatasetParts",
    "DeviceLoader",
    "ImageTensorDataset",
    "Loaders",
    "Preset",
    "TorchLoader",
    "adapt_to_weights",
    "check_compatible",
    "create_datasets",
    "default_memory_budget",
    "eval_transform_from_meta",
    "get_preset",
    "list_datasets",
    "list_presets",
    "load_images",
    "make_loaders",
    "read_cifar",
    "read_idx",
    "read_idx_pair",
    "register_dataset",
    "stratified_split",
]
