"""The file-backed built-in datasets: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``.

Each is found through the search order of :mod:`finetune_kit.data.sources`, read once into uint8
tensors by the fast readers (:func:`read_idx_pair`, :func:`read_cifar`) and returned as
:class:`ImageTensorDataset` splits. Downloads use torchvision's mirrors and MD5 checksums, read
from ``torchvision.datasets.<Class>`` rather than copied here.

Example:
    >>> from finetune_kit.data.builtin import FASHION_MNIST_CLASSES
    >>> FASHION_MNIST_CLASSES[:3]
    ['T-shirt/top', 'Trouser', 'Pullover']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from finetune_kit.data.bundle import DatasetParts
from finetune_kit.data.cifar import read_cifar
from finetune_kit.data.idx import read_idx_pair
from finetune_kit.data.registry import register_dataset
from finetune_kit.data.sources import SourceSpec, find_source, resolve_file
from finetune_kit.data.tensor_dataset import ImageTensorDataset
from finetune_kit.errors import ConfigError, DataError

__all__ = ["FASHION_MNIST_CLASSES", "MNIST_CLASSES", "SOURCES"]

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MNIST_CLASSES = [str(d) for d in range(10)]
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_SUFFIXES = (".gz", "")


def _idx_download(class_name: str) -> Callable[[Path], None]:
    """Download the four IDX files of a torchvision class, trying each mirror, checking MD5s."""

    def download(folder: Path) -> None:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_url

        cls = getattr(tvd, class_name)
        for filename, md5 in cls.resources:
            failures = []
            for mirror in cls.mirrors:
                try:
                    download_url(f"{mirror}{filename}", root=str(folder), filename=filename, md5=md5)
                    break
                except (OSError, RuntimeError) as exc:
                    failures.append(f"{mirror}{filename}: {exc}")
            else:
                raise OSError("; ".join(failures))

    return download


def _archive_download(class_name: str) -> Callable[[Path], None]:
    """Download and extract a CIFAR archive (torchvision's URL and MD5)."""

    def download(folder: Path) -> None:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive

        cls = getattr(tvd, class_name)
        download_and_extract_archive(cls.url, str(folder), filename=cls.filename, md5=cls.tgz_md5)
        (folder / cls.filename).unlink(missing_ok=True)

    return download


SOURCES: dict[str, SourceSpec] = {
    "mnist": SourceSpec(
        "mnist",
        "MNIST",
        _IDX_FILES,
        _IDX_SUFFIXES,
        ("", "MNIST/raw"),
        ("mnist",),
        _idx_download("MNIST"),
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "fashion_mnist": SourceSpec(
        "fashion_mnist",
        "Fashion-MNIST",
        _IDX_FILES,
        _IDX_SUFFIXES,
        ("", "FashionMNIST/raw"),
        ("fashion-mnist", "fashion_mnist"),
        _idx_download("FashionMNIST"),
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "apt-get install dataset-fashion-mnist",
    ),
    "cifar10": SourceSpec(
        "cifar10",
        "CIFAR-10",
        (
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
            "batches.meta",
        ),
        ("",),
        ("", "cifar-10-batches-py"),
        ("cifar10", "cifar-10"),
        _archive_download("CIFAR10"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": SourceSpec(
        "cifar100",
        "CIFAR-100",
        ("train", "test", "meta"),
        ("",),
        ("", "cifar-100-python"),
        ("cifar100", "cifar-100"),
        _archive_download("CIFAR100"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


def _idx_parts(name: str, class_names: list[str], preset: str, root, download: bool) -> DatasetParts:
    spec = SOURCES[name]
    folder = find_source(spec, root=root, download=download)
    files = [resolve_file(folder, stem, spec.suffixes) for stem in spec.files]
    if any(f is None for f in files):  # removed between the search and now
        raise DataError(f"{spec.title} files disappeared from {folder} while reading.")
    splits = []
    for images_file, labels_file in ((files[0], files[1]), (files[2], files[3])):
        images, targets = read_idx_pair(images_file, labels_file, num_classes=len(class_names))
        splits.append(ImageTensorDataset(images, targets, class_names, source=str(images_file)))
    return DatasetParts(
        train=splits[0],
        test=splits[1],
        class_names=class_names,
        default_preset=preset,
        source=str(folder),
    )


@register_dataset("fashion_mnist")
def fashion_mnist(*, root: str | Path | None = None, download: bool = True) -> DatasetParts:
    """Fashion-MNIST: 60,000 training and 10,000 test 28x28 grayscale images of 10 clothes.

    Preset ``fashion`` (crop with 2-pixel padding + horizontal flip: clothes are mirror-symmetric).
    """
    return _idx_parts("fashion_mnist", FASHION_MNIST_CLASSES, "fashion", root, download)


@register_dataset("mnist")
def mnist(*, root: str | Path | None = None, download: bool = True) -> DatasetParts:
    """MNIST: 60,000 training and 10,000 test 28x28 grayscale handwritten digits.

    Preset ``mnist`` (normalise only: digits are not flip-symmetric).
    """
    return _idx_parts("mnist", MNIST_CLASSES, "mnist", root, download)


def _cifar_parts(name: str, labels: str, root, download: bool) -> DatasetParts:
    folder = find_source(SOURCES[name], root=root, download=download)
    train = read_cifar(folder, split="train", labels=labels)
    test = read_cifar(folder, split="test", labels=labels)
    return DatasetParts(
        train=ImageTensorDataset(train.images, train.targets, train.class_names, source=train.source),
        test=ImageTensorDataset(test.images, test.targets, test.class_names, source=test.source),
        class_names=train.class_names,
        default_preset="cifar",
        source=str(folder),
    )


@register_dataset("cifar10")
def cifar10(*, root: str | Path | None = None, download: bool = True) -> DatasetParts:
    """CIFAR-10: 50,000 training and 10,000 test 32x32 RGB images, 10 classes (preset ``cifar``)."""
    return _cifar_parts("cifar10", "fine", root, download)


@register_dataset("cifar100")
def cifar100(*, root: str | Path | None = None, download: bool = True, labels: str = "fine") -> DatasetParts:
    """CIFAR-100: 50,000 / 10,000 32x32 RGB images; ``labels="fine"`` (100) or ``"coarse"`` (20)."""
    if labels not in ("fine", "coarse"):
        raise ConfigError(f"cifar100 labels={labels!r}: expected 'fine' (100 classes) or 'coarse' (20).")
    return _cifar_parts("cifar100", labels, root, download)
