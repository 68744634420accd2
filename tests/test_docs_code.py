"""The plain ```` ```python ```` blocks of the getting-started page and the guides run.

The blocks of a page run in order in one namespace, like a script, in a temporary working
directory, on the CPU, with the real datasets replaced by small ``fake`` ones of the same shape
(so no download and a few seconds per page). A page may need names its text assumes (``model``,
``train_loader`` ...): :data:`SETUP` defines them before its first block.

A block that cannot run as written (it needs a GPU, a download, files of your own) is marked in
the Markdown by a MyST comment on the line before its fence, which the site does not show::

    % skip-test: downloads the ImageNet weights
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.test_docs import DOCS, FENCE, code_blocks

SKIP = re.compile(r"^%\s*skip-test:\s*(?P<reason>\S.*)$")
PAGES = [DOCS / "getting_started.md", *sorted((DOCS / "guide").glob("*.md"))]

FAKES = {  # dataset name -> the fake dataset standing in for it (same channels and size)
    "fashion_mnist": {"in_channels": 1, "image_size": 28},
    "mnist": {"in_channels": 1, "image_size": 28},
    "cifar10": {"in_channels": 3, "image_size": 32},
}

SETUP = {
    "data.md": """
        run_dir = Path("runs/data"); run_dir.mkdir(parents=True)
        x_train = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8); y_train = torch.arange(40) % 2
        x_test = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8); y_test = torch.arange(10) % 2
    """,
    "export_predict.md": """
        from PIL import Image
        data = fk.create_datasets("fashion_mnist")
        trainer = fk.Trainer(fk.create_model("convnet", num_classes=10, in_channels=1), data,
                             epochs=1, verbosity=0, output_dir="runs/fmnist")
        trainer.fit()
        for name in ("shoe.png", "bag.jpg"):
            Image.fromarray(data.test.images[0, 0].numpy()).save(name)
        images = data.test.images[:4]
    """,
    "deploy.md": """
        from PIL import Image
        data = fk.create_datasets("fashion_mnist")
        model = fk.create_model("convnet", num_classes=10, in_channels=1)
        fk.Trainer(model, data, epochs=1, verbosity=0, output_dir="runs/fmnist").fit()
        for name in ("shoe.png", "bag.jpg"):
            Image.fromarray(data.test.images[0, 0].numpy()).save(name)
        images = data.test.images[:4].numpy()                      # uint8 (N, C, H, W)
        mean, std = data.mean[0], data.std[0]
        batch = ((data.test.images[:4].float() / 255 - mean) / std).numpy()   # the graph's input
    """,
    "freezing.md": """
        data = fk.create_datasets("cifar10")
        model = fk.create_model("resnet18", num_classes=10, small_input=True)
        train_loader = fk.make_loaders(data, batch_size=32, device="cpu").train
    """,
    "models.md": "",
    "training_parts.md": """
        data = fk.create_datasets("fashion_mnist")
        model = fk.create_model("resnet18", num_classes=10, in_channels=1, small_input=True)
        model.layer4.requires_grad_(False)          # the text unfreezes it later
        loaders = fk.make_loaders(data, batch_size=32, device="cpu")
        train_loader, val_loader = loaders.train, loaders.val
        logits, targets = torch.randn(8, 10), torch.arange(8)
        confusion = torch.eye(10, dtype=torch.long) * 3
        y_true, y_pred = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 2])
        scheduler = None
        def evaluate(model):  # your own evaluation
            return model
    """,
}


def runnable_blocks(page: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(runnable, skipped)``: the page's plain python blocks, as ``(line, code)``; a skipped
    block's second item is the reason given in its ``% skip-test:`` comment."""
    lines = page.read_text(encoding="utf-8").splitlines()
    run, skipped = [], []
    for first_line, code in code_blocks("\n".join(lines)):
        opening = FENCE.match(lines[first_line - 2])
        if opening is None or opening["info"].strip() != "python" or opening["indent"]:
            continue
        before = lines[first_line - 3] if first_line >= 3 else ""
        marker = SKIP.match(before)
        (skipped if marker else run).append((first_line, marker["reason"] if marker else code))
    return run, skipped


@pytest.fixture
def restored_registries():
    """Names a page registers (``fk.register_strategy("top_two")`` ...) are removed afterwards."""
    import sys

    from finetune_kit.registry import Registry

    registries = {
        id(value): value
        for name, module in list(sys.modules.items())
        if name.startswith("finetune_kit")
        for value in vars(module).values()
        if isinstance(value, Registry)
    }
    saved = [(registry, dict(registry._entries)) for registry in registries.values()]
    yield
    for registry, entries in saved:
        registry._entries.clear()
        registry._entries.update(entries)


@pytest.fixture
def small_datasets(monkeypatch, restored_registries):
    """The built-in datasets of :data:`FAKES` replaced by small fake ones."""
    from finetune_kit.data.registry import DATASETS
    from finetune_kit.data.tensors import fake

    for name, shape in FAKES.items():

        def builder(*, root=None, download=True, _shape=shape):
            return fake(num_classes=10, train_size=120, test_size=40, **_shape)

        monkeypatch.setitem(DATASETS._entries, name, builder)


def test_skip_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n% skip-test: needs a GPU\n```python\ny = 2\n```\n")
    assert runnable_blocks(page) == ([(2, "x = 1")], [(7, "needs a GPU")])


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch, small_datasets):
    import torch

    import finetune_kit as fk

    run, skipped = runnable_blocks(page)
    if not run:
        pytest.skip(f"no runnable python block ({len(skipped)} marked skip-test)")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = {"torch": torch, "fk": fk, "Path": Path, "__name__": "__docs__"}
    exec(textwrap.dedent(SETUP.get(page.name, "")), namespace)
    for line, code in run:
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as error:  # name the block, keep the error
            raise AssertionError(
                f"{page.relative_to(DOCS)} line {line}: {type(error).__name__}: {error}"
            ) from error
