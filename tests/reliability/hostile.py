"""Shared pieces of the hostile corpus (tests/reliability/test_hostile_*.py).

A *world* is built once per session: a tiny trained run directory (``run/``: checkpoints,
config.toml, split.json), its export (``export/``), an image, a config file, MNIST IDX files,
a CIFAR-10 folder and an image folder. A case copies what it needs into its own ``tmp_path``,
spoils it, and runs one command or call. Every case then checks the same four things:

* the refusal is typed: exit status 2 from the CLI, a :class:`~finetune_kit.FinetuneKitError`
  from the API;
* it is one line (``finetune-kit: error: ...`` on stderr; no newline in an API message) with
  no traceback;
* it names the problem and the fix: every ``|``-separated fragment of the case's words is in
  it (case-insensitive), and it never advises loading a file with ``weights_only=False``;
* nothing outside the run directory changed: the SHA-256 of every file under ``tmp_path`` and
  under the world, before and after, are equal, and the case's run directory (``out/``) was
  not created.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.data.idx import write_idx
from finetune_kit.storage.checkpoint import load_checkpoint

CONFIG = """
[data]
dataset = "fake"
val_fraction = 0.25
options = {train_size = 48, test_size = 12, num_classes = 3, in_channels = 1, image_size = 16}
[loader]
batch_size = 16
[model]
name = "lenet"
options = {input_size = 16}
[train]
epochs = 1
device = "cpu"
progress = false
"""

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@dataclass
class World:
    """Good files, made once; cases copy them before spoiling them."""

    root: Path
    run: Path
    export: Path
    image: Path
    config: Path
    state: dict[str, Any]
    document: dict[str, Any]
    mnist: Path
    cifar: Path
    folder: Path


def build_world(root: Path) -> World:
    config = root / "run.toml"
    config.write_text(CONFIG)
    run = root / "run"
    assert main(["train", "--config", str(config), "--output-dir", str(run), "--no-test"]) == 0
    export = fk.export(run, root / "export")
    image = root / "image.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(image)
    world = World(
        root=root,
        run=run,
        export=export,
        image=image,
        config=config,
        state=load_checkpoint(run / "last.ckpt"),
        document=json.loads((export / "model.json").read_text()),
        mnist=write_mnist(root / "mnist"),
        cifar=write_cifar(root / "cifar-10-batches-py"),
        folder=write_folder(root / "images"),
    )
    return world


def write_mnist(root: Path, n: int = 20) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    for split in ("train", "test"):
        write_idx(root / IDX_FILES[f"{split}_x"], images)
        write_idx(root / IDX_FILES[f"{split}_y"], labels)
    return root


def cifar_batch(n: int = 20, labels: Any = None, protocol: int = 2, **extra: Any) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {b"data": pixels, b"labels": [i % 10 for i in range(n)] if labels is None else labels}
    batch.update(extra)
    return pickle.dumps(batch, protocol=protocol)


def cifar_meta(names: Any = None, protocol: int = 2) -> bytes:
    names = [b"c%d" % i for i in range(10)] if names is None else names
    return pickle.dumps({b"label_names": names}, protocol=protocol)


def write_cifar(root: Path, batch: bytes | None = None, meta: bytes | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_FILES:
        (root / name).write_bytes(cifar_batch() if batch is None else batch)
    (root / "batches.meta").write_bytes(cifar_meta() if meta is None else meta)
    return root


def write_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 5) -> Path:
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("L", (8, 8), 20 * i + 100 * k).save(root / name / f"{i}.png")
    return root


# ------------------------------------------------------------------ a case's workspace
@dataclass
class Ctx:
    """What a case may use: the world (read-only) and its own directory."""

    world: World
    tmp: Path
    out: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.tmp / "out"

    def path(self, name: str) -> Path:
        return self.tmp / name

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path

    def config(self, old: str = "", new: str = "") -> Path:
        assert old in CONFIG, old
        return self.write("run.toml", CONFIG.replace(old, new) if old else CONFIG)

    def export(
        self, edit: Callable[[dict[str, Any]], Any] | None = None, *, raw: bytes | None = None
    ) -> Path:
        """A copy of the world's export, its model.json edited (or replaced by ``raw``)."""
        target = self.tmp / "exported"
        shutil.copytree(self.world.export, target)
        if raw is not None:
            (target / "model.json").write_bytes(raw)
        elif edit is not None:
            document = copy.deepcopy(self.world.document)
            edit(document)
            (target / "model.json").write_text(json.dumps(document))
        return target

    def export_weights(
        self, edit: Callable[[dict[str, torch.Tensor]], Any] | None = None, *, raw: bytes | None = None
    ) -> Path:
        """A copy of the export whose weights are edited, with a matching SHA-256 in model.json."""
        import safetensors.torch

        target = self.export()
        tensors = safetensors.torch.load((target / "model.safetensors").read_bytes())
        if edit is not None:
            edit(tensors)
        blob = raw if raw is not None else safetensors.torch.save(tensors)
        (target / "model.safetensors").write_bytes(blob)
        document = copy.deepcopy(self.world.document)
        document["weights_sha256"] = hashlib.sha256(blob).hexdigest()
        (target / "model.json").write_text(json.dumps(document))
        return target

    def run(self, edit: Callable[[dict[str, Any]], Any] | None = None) -> Path:
        """A copy of the world's run directory, its last.ckpt edited."""
        target = self.tmp / "run"
        shutil.copytree(self.world.run, target)
        if edit is not None:
            state = copy.deepcopy(self.world.state)
            edit(state)
            torch.save(state, target / "last.ckpt")
        return target

    def mnist(self) -> Path:
        target = self.tmp / "mnist"
        shutil.copytree(self.world.mnist, target)
        return target

    def cifar(self) -> Path:
        target = self.tmp / "cifar-10-batches-py"
        shutil.copytree(self.world.cifar, target)
        return target

    def folder(self) -> Path:
        target = self.tmp / "images"
        shutil.copytree(self.world.folder, target, symlinks=True)
        return target


# ------------------------------------------------------------------ the checks
def digest(*roots: Path, skip: Path | None = None) -> dict[str, str]:
    """SHA-256 of every file (and the target of every link) under ``roots``, except ``skip``."""
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if skip is not None and (here == skip or skip in here.parents):
                dirnames[:] = []
                continue
            for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
                path = here / name
                if path.is_symlink():
                    found[str(path)] = "link:" + os.readlink(path)
                elif path.is_file():
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def says(message: str, words: str) -> None:
    """Every ``|``-separated fragment of ``words`` is in ``message`` (case-insensitive)."""
    for word in words.split(" | "):
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"


def cli_refusal(capsys, argv: list[str]) -> str:
    """Run the CLI: exit 2, exactly one stderr line ``finetune-kit: error: ...``, no traceback."""
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, (status, captured.err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("finetune-kit: error: "), lines
    assert "Traceback" not in captured.err and "\x1b" not in captured.err
    assert "weights_only=false" not in lines[0].lower(), "never advise loading a file unsafely"
    return lines[0]


def api_refusal(call: Callable[[], Any], error: type[BaseException] = fk.FinetuneKitError) -> str:
    """Call: it must raise ``error`` (a FinetuneKitError) whose message is one line."""
    try:
        call()
    except fk.FinetuneKitError as exc:
        assert isinstance(exc, error), f"{type(exc).__name__} is not a {error.__name__}: {exc}"
        text = str(exc)
        assert "\n" not in text.strip(), text
        assert "weights_only=false" not in text.lower(), "never advise loading a file unsafely"
        return text
    raise AssertionError("no error was raised")
