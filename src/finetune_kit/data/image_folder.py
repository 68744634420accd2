"""The ``image_folder`` dataset: your own PNG/JPEG images, one folder per class.

Two layouts are recognised under ``root``::

    root/train/<class>/*.png    root/val/<class>/...  (optional)   root/test/<class>/... (optional)
    root/<class>/*.jpg          (one folder of class folders; the library splits it)

Class names are the sorted folder names of ``train/`` (or of ``root``); their order is the label
order, recorded in ``DataBundle.meta()["class_names"]`` (the class index map stored with the
run). Without ``test/`` (or in the second layout), a stratified ``test_fraction`` of the images is
held out as the test set with a fixed ``split_seed`` -- independent of the run seed, so the test
set never changes between runs. Without ``val/``, ``create_datasets`` cuts the validation split
from the training images as for every dataset.

Images are decoded once, by a pool of threads, into uint8 tensors: grayscale when every image is
grayscale, else RGB (or as ``channels=`` says); ``image_size=`` resizes them all, which is needed
when sizes differ. ``cache=True`` stores the decoded tensors under the cache folder, keyed by the
file list, sizes and modification times, so the next run skips decoding.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cls in ("cat", "dog"):
    ...     (root / cls).mkdir()
    ...     for i in range(5):
    ...         Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / cls / f"{i}.png")
    >>> from finetune_kit.data import create_datasets
    >>> data = create_datasets("image_folder", root=root, val_fraction=0, test_fraction=0.2)
    >>> data.class_names, len(data.train), len(data.test), data.in_channels
    (['cat', 'dog'], 8, 2, 3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from finetune_kit.data.bundle import DatasetParts
from finetune_kit.data.images import IMAGE_SUFFIXES, check_image_size, check_workers, decode_file
from finetune_kit.data.presets import preset_for_size
from finetune_kit.data.registry import register_dataset
from finetune_kit.data.sampling import derive_seed
from finetune_kit.data.sources import cache_dir
from finetune_kit.data.splits import stratified_split
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import CheckpointError, ConfigError, DataError
from finetune_kit.runtime.reproducibility import check_seed
from finetune_kit.storage.atomic import atomic_write_bytes
from finetune_kit.storage.paths import user_path
from finetune_kit.storage.torch_files import read_torch_file

__all__ = ["scan_class_folders"]

log = logging.getLogger("finetune_kit.data")

_CACHE_VERSION = 1


@dataclass(frozen=True)
class _Scan:
    """Files and labels of one split folder."""

    folder: Path
    files: list[Path]
    targets: list[int]


def _class_dirs(folder: Path) -> list[Path]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    home = folder.resolve()
    for d in dirs:
        target = d.resolve()
        if target == home or target in home.parents:
            raise DataError(
                f"Class folder {d} is a link to {target}, which holds the image folder itself: "
                "its images would be counted again under another class. Remove the link."
            )
    return dirs


def _check_no_repeats(scans: list[_Scan]) -> None:
    """An image file seen twice (a link into another class or split) would get two labels."""
    seen: dict[Path, Path] = {}
    for scan in scans:
        for path in scan.files:
            real = path.resolve()
            if real in seen:
                raise DataError(
                    f"{path} and {seen[real]} are the same image file (a link): it would be "
                    "used twice, under two classes or in two splits. Remove one of them."
                )
            seen[real] = path


def _images_in(folder: Path) -> tuple[list[Path], list[Path]]:
    files, skipped = [], []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if path.is_file() and not hidden:
            (files if path.suffix.lower() in IMAGE_SUFFIXES else skipped).append(path)
    return files, skipped


def scan_class_folders(folder: Path, class_names: list[str] | None = None) -> tuple[list[str], _Scan]:
    """List the images of ``folder/<class>/**`` with their labels.

    Args:
        folder: a folder of class folders.
        class_names: the classes of the training folder (a val/test folder must not add any);
            None to take them from ``folder``.

    Returns:
        ``(class_names, scan)``.

    Raises:
        DataError: no class folders, an empty class folder, or a class unknown to training.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "b").mkdir(); (root / "a").mkdir()
        >>> Image.new("L", (2, 2)).save(root / "a" / "x.png")
        >>> Image.new("L", (2, 2)).save(root / "b" / "y.jpg")
        >>> names, scan = scan_class_folders(root)
        >>> names, scan.targets
        (['a', 'b'], [0, 1])
    """
    dirs = _class_dirs(folder)
    if not dirs:
        raise DataError(
            f"{folder} holds no class folders. Put the images in one folder per class: "
            f"{folder}/<class name>/*.png (or train/, val/, test/ folders of class folders)."
        )
    names = [d.name for d in dirs] if class_names is None else class_names
    files, targets, skipped = [], [], []
    for d in dirs:
        if d.name not in names:
            raise DataError(
                f"{d} is a class that the training folder does not have ({', '.join(names)}). "
                "Add it to train/ or remove it."
            )
        found, other = _images_in(d)
        skipped += other
        if not found:
            raise DataError(f"Class folder {d} holds no PNG or JPEG images. Add images to it or remove it.")
        files += found
        targets += [names.index(d.name)] * len(found)
    if skipped:
        log.warning("%s: skipped %d non-PNG/JPEG files, e.g. %s", folder, len(skipped), skipped[0])
    return names, _Scan(folder, files, targets)


def _convert(image: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (1 or 3, H, W) -> ``channels``."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1)
    return TF.rgb_to_grayscale(image)


def _decode_all(files: list[Path], num_workers: int) -> list[torch.Tensor]:
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        return list(pool.map(decode_file, files))


def _stack(
    images: list[torch.Tensor], files: list[Path], channels: int, size: tuple[int, int] | None
) -> torch.Tensor:
    out = []
    for image, path in zip(images, files, strict=True):
        image = _convert(image, channels)
        if size is not None and tuple(image.shape[-2:]) != size:
            image = TF.resize(image, list(size), antialias=True)
        if out and image.shape[-2:] != out[0].shape[-2:]:
            h, w = out[0].shape[-2:]
            raise DataError(
                f"Images differ in size: {files[0]} is {h}x{w} but {path} is "
                f"{image.shape[-2]}x{image.shape[-1]}. Pass image_size=(H, W) (e.g. "
                "image_size=224) to resize them all."
            )
        out.append(image.contiguous())
    return torch.stack(out)


def _cache_key(scans: list[_Scan], channels: int | None, size: tuple[int, int] | None) -> str:
    h = hashlib.sha256(json.dumps([_CACHE_VERSION, channels, size]).encode())
    for scan in scans:
        h.update(str(scan.folder.resolve()).encode())
        for path, target in zip(scan.files, scan.targets, strict=True):
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{target}\n".encode())
    return h.hexdigest()[:32]


def _decode_scans(
    scans: list[_Scan], channels: int | None, size: tuple[int, int] | None, num_workers: int
) -> list[torch.Tensor]:
    decoded = [_decode_all(scan.files, num_workers) for scan in scans]
    if channels is None:
        colour = any(img.shape[0] == 3 for split in decoded for img in split)
        channels = 3 if colour else 1
    stacked = [_stack(d, s.files, channels, size) for d, s in zip(decoded, scans, strict=True)]
    for images, scan in zip(stacked[1:], scans[1:], strict=True):
        if images.shape[-2:] != stacked[0].shape[-2:]:
            raise DataError(
                f"Images in {scan.folder} are {images.shape[-2]}x{images.shape[-1]} but those in "
                f"{scans[0].folder} are {stacked[0].shape[-2]}x{stacked[0].shape[-1]}. Pass "
                "image_size=(H, W) to resize them all."
            )
    return stacked


def _read_cache(path: Path, scans: list[_Scan], size: tuple[int, int] | None) -> list[torch.Tensor]:
    """The decoded images of a cache file, checked against the scans they must match."""
    fix = f"Delete {path}; the next run with cache=True decodes the images again."
    try:
        images = read_torch_file(path, what="image cache", fix=fix)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    ok = isinstance(images, list) and len(images) == len(scans)
    for split, scan in zip(images if ok else [], scans, strict=False):
        ok = ok and torch.is_tensor(split) and split.dtype == torch.uint8 and split.ndim == 4
        ok = ok and split.shape[0] == len(scan.files) and split.shape[1] in (1, 3)
        ok = ok and (size is None or tuple(split.shape[-2:]) == size)
    if not ok:
        raise DataError(
            f"The image cache {path} does not hold the decoded images of {scans[0].folder}. {fix}"
        )
    return images


def _load(
    scans: list[_Scan],
    channels: int | None,
    size: tuple[int, int] | None,
    *,
    cache: bool,
    num_workers: int,
) -> list[torch.Tensor]:
    if not cache:
        return _decode_scans(scans, channels, size, num_workers)
    path = cache_dir() / "image_folder" / f"{_cache_key(scans, channels, size)}.pt"
    if path.is_file():
        log.info("image_folder: decoded images from the cache %s", path)
        return _read_cache(path, scans, size)
    images = _decode_scans(scans, channels, size, num_workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda handle: torch.save(images, handle))
    return images


def _scans(root: Path) -> tuple[list[str], dict[str, _Scan]]:
    if (root / "train").is_dir():
        names, train = scan_class_folders(root / "train")
        scans = {"train": train}
        for split in ("val", "test"):
            if (root / split).is_dir():
                scans[split] = scan_class_folders(root / split, names)[1]
        return names, scans
    names, everything = scan_class_folders(root)
    return names, {"all": everything}


def _check_options(test_fraction: object, channels: object, num_workers: object, split_seed: object) -> None:
    """The options, checked before any file is read."""
    number = isinstance(test_fraction, (int, float)) and not isinstance(test_fraction, bool)
    if not number or not 0 < test_fraction < 1:
        raise ConfigError(
            f"test_fraction={test_fraction!r} is out of range: expected a number in (0, 1), e.g. "
            "0.1 to hold out 10% of the images as the test set (or add a test/ folder)."
        )
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ConfigError(f"channels={channels!r}: expected None, 1 (grayscale) or 3 (RGB).")
    if num_workers is not None:
        check_workers(num_workers)
    check_seed(split_seed, "split_seed")


@register_dataset("image_folder")
def image_folder(
    *,
    root: str | Path | None = None,
    download: bool = True,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    cache: bool = False,
    num_workers: int | None = None,
) -> DatasetParts:
    """Your own images: ``root/train|val|test/<class>/`` or ``root/<class>/`` (see module docs).

    Args:
        root: the folder (required).
        download: unused (nothing to download).
        image_size: resize every image to this (H, W) or side; required when sizes differ.
        channels: 1 or 3 to force grayscale or RGB; None: grayscale only if all images are.
        test_fraction: share held out as test set when there is no ``test/`` folder.
        split_seed: seeds that test split (not the run seed: the test set stays fixed).
        cache: keep the decoded tensors in the cache folder for the next run.
        num_workers: decoding threads (default: CPU count, at most 8).
    """
    if root is None:
        raise ConfigError("image_folder needs root='path/to/your/images'.")
    _check_options(test_fraction, channels, num_workers, split_seed)
    size = None if image_size is None else check_image_size(image_size)
    folder = user_path(root, "root").expanduser()
    if not folder.is_dir():
        raise DataError(f"Image folder {folder} does not exist or is not a folder.")
    names, scans = _scans(folder)
    _check_no_repeats(list(scans.values()))
    workers = num_workers or min(8, os.cpu_count() or 1)
    tensors = _load(list(scans.values()), channels, size, cache=cache, num_workers=workers)
    made = {
        key: ImageTensorDataset(images, torch.tensor(scan.targets), names, source=str(scan.folder))
        for (key, scan), images in zip(scans.items(), tensors, strict=True)
    }
    if "all" in made or "test" not in made:
        full = made.pop("all", None) or made.pop("train")
        train_idx, test_idx = stratified_split(
            full.targets, test_fraction, seed=derive_seed("image_folder_test", split_seed)
        )
        if test_idx.numel() == 0:
            raise DataError(
                f"test_fraction={test_fraction} of the {len(full)} images in {folder} leaves no "
                "test images. Add a test/ folder or raise test_fraction."
            )
        made["train"], made["test"] = full.subset(train_idx), full.subset(test_idx)
    return DatasetParts(
        train=made["train"],
        test=made["test"],
        val=made.get("val"),
        class_names=names,
        default_preset=preset_for_size(made["train"].image_size),  # preset="auto": by size
        source=str(folder),
    )
