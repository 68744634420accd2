"""Hostile data files: IDX and CIFAR files, image folders, image caches and split files.

Each case spoils one file of a dataset and builds the dataset (or evaluates a run that reads
it). The checks every case passes are described in tests/reliability/hostile.py.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import finetune_kit as fk
from finetune_kit.data.idx import write_idx
from tests.reliability.hostile import (
    IDX_FILES,
    Ctx,
    api_refusal,
    cifar_batch,
    cifar_meta,
    cli_refusal,
    digest,
    says,
    write_cifar,
)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def case(kind, id, make, words, error=fk.FinetuneKitError):
    return pytest.param(make, words, error, id=f"{kind}/{id}")


# ---------------------------------------------------------------- IDX
def mnist_with(name: str, payload: bytes, gz: bool = True):
    """MNIST whose file ``name`` (a key of IDX_FILES) holds ``payload``."""

    def make(c: Ctx):
        root = c.mnist()
        path = root / IDX_FILES[name]
        if not gz:
            path = path.with_suffix("")  # a raw (not gzip) file of the same name
            (root / IDX_FILES[name]).unlink()
        path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
        return lambda: fk.create_datasets("mnist", root=str(root), download=False)

    return make


def header(code: int, *dims: int) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def bomb_payload() -> bytes:
    """A valid 20-image header and body followed by 64 MiB of zeros (a few KiB gzipped)."""
    return header(0x08, 20, 28, 28) + bytes(20 * 28 * 28) + bytes(64 * 2**20)


def tensor_file(tensor: torch.Tensor) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return write_idx(Path(tmp) / "x", tensor).read_bytes()


IDX_CASES = [
    case(
        "idx",
        "header-claims-terabytes",
        mnist_with("train_x", header(0x08, 60000, 2**16, 2**16)),
        "declares shape | gib | download it again",
    ),
    case(
        "idx",
        "gzip-bomb",
        mnist_with("train_x", bomb_payload()),
        "longer than its header says | download it again",
    ),
    case(
        "idx",
        "zero-dimensions",
        mnist_with("train_y", bytes([0, 0, 8, 0])),
        "declares 0 dimensions | download it again",
    ),
    case(
        "idx",
        "float-labels",
        mnist_with("train_y", tensor_file(torch.zeros(20, dtype=torch.float32))),
        "should hold uint8 labels | is it an image file",
    ),
    case(
        "idx",
        "labels-2d",
        mnist_with("test_y", tensor_file(torch.zeros(20, 1, dtype=torch.uint8))),
        "should hold uint8 labels of shape (n,)",
    ),
    case(
        "idx",
        "images-4d",
        mnist_with("train_x", tensor_file(torch.zeros(20, 1, 28, 28, dtype=torch.uint8))),
        "should hold uint8 images of shape (n, h, w) | is it a label file",
    ),
    case(
        "idx",
        "images-as-labels",
        mnist_with("train_y", tensor_file(torch.zeros(20, 28, 28, dtype=torch.uint8))),
        "should hold uint8 labels | is it an image file",
    ),
    case(
        "idx",
        "no-images",
        mnist_with("train_x", header(0x08, 0, 28, 28)),
        "holds 0 images but | replace the mismatched one",
    ),
    case(
        "idx",
        "raw-header-cut",
        mnist_with("test_x", bytes([0, 0, 8, 3, 0, 0]), gz=False),
        "header is truncated | download it again",
    ),
    case("idx", "raw-empty", mnist_with("test_y", b"", gz=False), "not an idx file | (empty file)"),
    case(
        "idx",
        "raw-html",
        mnist_with("train_x", b"<html>Not Found</html>", gz=False),
        "not an idx file | wrong magic number",
    ),
    case(
        "idx",
        "gzip-cut",
        lambda c: (lambda p: lambda: fk.create_datasets("mnist", root=str(p), download=False))(cut_gzip(c)),
        "gzip stream is corrupt or truncated",
    ),
]


def cut_gzip(c: Ctx):
    root = c.mnist()
    path = root / IDX_FILES["test_x"]
    path.write_bytes(path.read_bytes()[:-12])  # the trailer and a few bytes of data gone
    return root


# ---------------------------------------------------------------- CIFAR
def cifar_with(batch: bytes | None = None, meta: bytes | None = None):
    def make(c: Ctx):
        root = write_cifar(c.path("cifar-10-batches-py"), batch, meta)
        return lambda: fk.create_datasets("cifar10", root=str(root), download=False)

    return make


def evil_pickle() -> bytes:
    return pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": Evil()}, protocol=2)


CIFAR_CASES = [
    case(
        "cifar",
        "fractional-labels",
        cifar_with(cifar_batch(labels=[0.5] * 20)),
        "labels must be 20 integers | float64 | extract the archive again",
    ),
    case(
        "cifar",
        "fractional-array",
        cifar_with(cifar_batch(labels=np.linspace(0, 9, 20))),
        "labels must be 20 integers | float64",
    ),
    case("cifar", "text-labels", cifar_with(cifar_batch(labels=["cat"] * 20)), "labels must be 20 integers"),
    case(
        "cifar",
        "huge-label",
        cifar_with(cifar_batch(labels=[2**70] + [0] * 19)),
        "labels must be 20 integers | object",
    ),
    case("cifar", "none-label", cifar_with(cifar_batch(labels=[None] * 20)), "labels must be 20 integers"),
    case(
        "cifar", "labels-table", cifar_with(cifar_batch(labels={0: 1})), "labels must be 20 integers | a dict"
    ),
    case(
        "cifar",
        "labels-nested",
        cifar_with(cifar_batch(labels=[[i % 10] for i in range(20)])),
        "labels must be 20 integers | shape (20, 1)",
    ),
    case(
        "cifar",
        "labels-bool",
        cifar_with(cifar_batch(labels=[True] * 20)),
        "labels must be 20 integers | bool",
    ),
    case("cifar", "label-negative", cifar_with(cifar_batch(labels=[-1] * 20)), "label -1 is outside [0, 10)"),
    case("cifar", "too-few-labels", cifar_with(cifar_batch(labels=[1, 2])), "holds 20 images but 2 labels"),
    case(
        "cifar",
        "key-number",
        cifar_with(pickle.dumps({5: 1, b"data": 0}, protocol=2)),
        "the key 5 | extract the archive again",
    ),
    case(
        "cifar",
        "key-tuple",
        cifar_with(pickle.dumps({(1, 2): 1}, protocol=2)),
        "the key (1, 2) | not a cifar batch",
    ),
    case(
        "cifar",
        "names-numbers",
        cifar_with(meta=cifar_meta(list(range(10)))),
        "class names | must be texts | found 0",
    ),
    case(
        "cifar",
        "names-too-few",
        cifar_with(meta=cifar_meta([b"a", b"b"])),
        "should list 10 class names | found 2",
    ),
    case(
        "cifar",
        "names-bytes",
        cifar_with(meta=cifar_meta(b"abcdefghij")),
        "should list 10 class names | found bytes",
    ),
    case(
        "cifar",
        "names-not-utf8",
        cifar_with(meta=cifar_meta([b"\xff\xfe"] * 10)),
        "not valid utf-8 | extract the archive again",
    ),
    case(
        "cifar",
        "pixels-float",
        cifar_with(pickle.dumps({b"data": np.zeros((20, 3072)), b"labels": [0] * 20})),
        "'data' should be uint8 of shape (n, 3072) | float64",
    ),
    case(
        "cifar",
        "pixels-narrow",
        cifar_with(pickle.dumps({b"data": np.zeros((20, 100), np.uint8), b"labels": [0] * 20})),
        "(n, 3072) | shape (20, 100)",
    ),
    case("cifar", "a-list", cifar_with(pickle.dumps([1, 2, 3])), "should hold a dict of arrays | list"),
    case(
        "cifar",
        "evil-global",
        cifar_with(evil_pickle()),
        "not a readable cifar pickle | refusing to load | extract the archive again",
    ),
    case("cifar", "complex-global", cifar_with(pickle.dumps({b"data": 1j})), "refusing to load | complex"),
    case("cifar", "cut-short", cifar_with(cifar_batch()[:100]), "not a readable cifar pickle | truncated"),
]


# ---------------------------------------------------------------- image folders
def folder_call(edit=None, **options):
    """``create_datasets("image_folder", root=...)`` on a copy of the world's folder."""

    def make(c: Ctx):
        root = c.folder()
        if edit is not None:
            edit(root, c)
        return lambda: fk.create_datasets("image_folder", root=str(root), val_fraction=0, **options)

    return make


def bomb(root, c):
    Image.new("1", (20000, 20000)).save(root / "cat" / "huge.png")  # 400 megapixels, a few KiB


def link_root(root, c):
    (root / "zzz").symlink_to(root, target_is_directory=True)


def link_parent(root, c):
    (root / "up").symlink_to(root.parent, target_is_directory=True)


def same_file_twice(root, c):
    (root / "dog" / "copy.png").symlink_to(root / "cat" / "0.png")


def train_test_share(root, c):
    for split in ("train", "test"):
        (root / split).mkdir()
        for name in ("cat", "dog"):
            (root / split / name).symlink_to(root / name, target_is_directory=True)


def truncated_png(root, c):
    data = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "0.png").write_bytes(data[: len(data) // 2])


def empty_png(root, c):
    (root / "dog" / "1.png").write_bytes(b"")


def cached(write):
    """A folder whose decoded-image cache was first made, then spoiled by ``write(path)``."""

    def edit(root, c):
        fk.create_datasets("image_folder", root=str(root), val_fraction=0, cache=True)
        (path,) = (c.tmp / "home" / ".cache").rglob("*.pt")
        write(path)

    return edit


IMAGE_FOLDER_CASES = [
    case(
        "folder", "decompression-bomb", folder_call(bomb), "huge.png | decompression bomb | shrink the image"
    ),
    case(
        "folder",
        "class-links-to-root",
        folder_call(link_root),
        "zzz is a link | image folder itself | remove the link",
    ),
    case("folder", "class-links-above", folder_call(link_parent), "up is a link | remove the link"),
    case(
        "folder",
        "one-file-two-classes",
        folder_call(same_file_twice),
        "same image file | two classes | remove one of them",
    ),
    case("folder", "train-test-share", folder_call(train_test_share), "same image file | two splits"),
    case(
        "folder",
        "truncated-png",
        folder_call(truncated_png),
        "0.png | not a readable png | replace or remove",
    ),
    case("folder", "empty-png", folder_call(empty_png), "1.png | not a readable png"),
    case(
        "folder",
        "cache-poisoned",
        folder_call(cached(lambda p: p.write_bytes(pickle.dumps(Evil()))), cache=True),
        "image cache | delete | decodes the images again",
    ),
    case(
        "folder",
        "cache-garbage",
        folder_call(cached(lambda p: p.write_bytes(b"garbage")), cache=True),
        "image cache | not a pytorch file | delete",
    ),
    case(
        "folder",
        "cache-wrong-type",
        folder_call(cached(lambda p: torch.save({"x": 1}, p)), cache=True),
        "does not hold the decoded images | delete",
    ),
    case(
        "folder",
        "cache-wrong-count",
        folder_call(
            cached(lambda p: torch.save([torch.zeros(3, 1, 8, 8, dtype=torch.uint8)], p)), cache=True
        ),
        "does not hold the decoded images",
    ),
    case(
        "folder",
        "cache-floats",
        folder_call(cached(lambda p: torch.save([torch.zeros(10, 1, 8, 8)], p)), cache=True),
        "does not hold the decoded images",
    ),
    case(
        "folder",
        "test-fraction-above-1",
        folder_call(test_fraction=1.5),
        "test_fraction=1.5 | (0, 1) | test/ folder",
    ),
    case("folder", "test-fraction-zero", folder_call(test_fraction=0), "test_fraction=0 | (0, 1)"),
    case("folder", "test-fraction-text", folder_call(test_fraction="0.1"), "test_fraction='0.1'"),
    case("folder", "workers-negative", folder_call(num_workers=-1), "num_workers=-1 | integer >= 1"),
    case("folder", "workers-zero", folder_call(num_workers=0), "num_workers=0 | integer >= 1"),
    case("folder", "workers-fraction", folder_call(num_workers=2.5), "num_workers=2.5"),
    case("folder", "image-size-zero", folder_call(image_size=0), "image_size=0 | [1, 8192]"),
    case("folder", "image-size-huge", folder_call(image_size=10**6), "image_size=1000000 | [1, 8192]"),
    case("folder", "image-size-text", folder_call(image_size="big"), "image_size='big' | e.g. image_size=32"),
    case(
        "folder",
        "image-size-three",
        folder_call(image_size=(16, 16, 3)),
        "image_size=(16, 16, 3) | pair (h, w)",
    ),
    case("folder", "channels-two", folder_call(channels=2), "channels=2 | 1 (grayscale) or 3 (rgb)"),
    case("folder", "split-seed-negative", folder_call(split_seed=-1), "split_seed=-1 | [0, 2**64 - 1]"),
    case(
        "folder",
        "split-seed-huge",
        folder_call(split_seed=2**70),
        "split_seed=1180591620717411303424 | 64 bits",
    ),
    case(
        "folder",
        "root-nul",
        lambda c: lambda: fk.create_datasets("image_folder", root="ima\0ges"),
        "contains a nul byte | retype",
    ),
]


# ---------------------------------------------------------------- split files
def split_with(edit=None, raw: bytes | None = None):
    """``finetune-kit evaluate`` of a copy of the world's run whose split.json is spoiled."""

    def make(c: Ctx):
        run = c.run()
        path = run / "split.json"
        if raw is not None:
            path.write_bytes(raw)
        else:
            record = json.loads(path.read_text())
            edit(record)
            path.write_text(json.dumps(record))
        return ["evaluate", "--checkpoint", str(run), "--device", "cpu"]

    return make


def set_key(key, value):
    return lambda r: r.__setitem__(key, value)


SPLIT_CASES = [
    case(
        "split",
        "bool-indices",
        split_with(set_key("val_indices", [True, False])),
        "val_indices' must be a list of integers | delete it",
    ),
    case(
        "split",
        "index-overflow",
        split_with(set_key("val_indices", [10**30])),
        "val_indices has an index outside | delete it",
    ),
    case(
        "split",
        "float-index",
        split_with(set_key("train_indices", [0.5])),
        "train_indices' must be a list of integers",
    ),
    case(
        "split",
        "text-index",
        split_with(set_key("train_indices", ["0"])),
        "train_indices' must be a list of integers",
    ),
    case(
        "split",
        "repeated-index",
        split_with(lambda r: r.__setitem__("val_indices", r["train_indices"][:2])),
        "repeats an index | delete it",
    ),
    case(
        "split",
        "deep-nesting",
        split_with(raw=b"[" * 100_000 + b"]" * 100_000),
        "nests too deeply | delete it to recompute",
    ),
    case(
        "split", "not-utf8", split_with(raw=b'{"dataset": "caf\xe9"}'), "cannot read split file | delete it"
    ),
    case("split", "a-list", split_with(raw=b"[1, 2]"), "does not hold a json object"),
    case(
        "split",
        "other-dataset",
        split_with(set_key("fingerprint", "0" * 16)),
        "was made for other data | fingerprint",
    ),
]


ALL = IDX_CASES + CIFAR_CASES + IMAGE_FOLDER_CASES + SPLIT_CASES


@pytest.mark.parametrize(("make", "words", "error"), ALL)
def test_hostile_data_is_refused_clearly(ctx, capsys, monkeypatch, make, words, error):
    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", str(ctx.tmp / "no-system-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(ctx.tmp / "home" / ".cache"))
    monkeypatch.setenv("FINETUNE_KIT_DATA", str(ctx.tmp / "home" / "data"))
    target = make(ctx)
    before = digest(ctx.tmp, ctx.world.root, skip=ctx.out)
    if isinstance(target, list):
        message = cli_refusal(capsys, [str(a) for a in target])
    else:
        message = api_refusal(target, error)
    says(message, words)
    assert digest(ctx.tmp, ctx.world.root, skip=ctx.out) == before, "a file outside the run directory changed"
    assert not ctx.out.exists() and not (ctx.tmp / "PWNED").exists()


def test_a_cifar_batch_pickled_with_protocol_5_is_read(tmp_path):
    """The control of the CIFAR cases: protocol 5 (numpy's out-of-band-capable format) loads."""
    root = write_cifar(tmp_path / "cifar", cifar_batch(protocol=5), cifar_meta(protocol=5))
    data = fk.create_datasets("cifar10", root=str(root), download=False, val_fraction=0)
    assert data.num_classes == 10 and len(data.train) == 100 and data.train.images.float().std() > 0


def test_the_gzip_bomb_is_refused_without_inflating_it(tmp_path, monkeypatch):
    """Only the bytes the header declares (and one more) are decompressed, not the 64 MiB."""
    from tests.reliability.hostile import write_mnist

    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", str(tmp_path / "none"))
    root = write_mnist(tmp_path / "mnist")
    (root / IDX_FILES["train_x"]).write_bytes(gzip.compress(bomb_payload()))
    inflated = []
    real = gzip.GzipFile.read

    def counting(self, size=-1):
        data = real(self, size)
        inflated.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting)
    with pytest.raises(fk.DataError, match="longer than its header says"):
        fk.create_datasets("mnist", root=str(root), download=False)
    assert 0 < sum(inflated) <= 16 + 20 * 28 * 28 + 1
