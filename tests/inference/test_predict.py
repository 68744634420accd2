"""predict: files, tensors and dataset splits preprocessed exactly as evaluation; the CLI body."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

import finetune_kit as fk
from finetune_kit.data import eval_transform_from_meta, load_images
from finetune_kit.errors import CheckpointError, ConfigError, DataError, DeviceError, ShapeError
from finetune_kit.inference import export, load_model
from finetune_kit.inference.predict import Predictions, predict
from tests.inference.brightness import CLASSES, brightness_data

LEVELS = {"cat": 40, "dog": 120, "frog": 200}  # the brightness of each class


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = brightness_data()
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    trainer = fk.Trainer(
        model,
        data,
        epochs=2,
        batch_size=16,
        optimizer="adam",
        lr=0.01,
        progress=False,
        device="cpu",
        output_dir=str(root / "run"),
    )
    trainer.fit()
    trainer.model.eval()
    return trainer, export(trainer.run_dir.root, root / "exported")


@pytest.fixture
def pngs(tmp_path):
    """One gray PNG per class at the stored size, and one RGB PNG of another size ("dog")."""
    paths = []
    for name, level in LEVELS.items():
        path = tmp_path / f"{name}.png"
        Image.new("L", (16, 16), level).save(path)
        paths.append(path)
    rgb = tmp_path / "big_dog.png"
    Image.new("RGB", (24, 20), (LEVELS["dog"],) * 3).save(rgb)
    return [*paths, rgb]


def reference_logits(model, meta, uint8_batch):
    with torch.no_grad():
        return model(eval_transform_from_meta(meta)(uint8_batch))


def test_files_give_the_original_models_predictions_bit_for_bit(trained, pngs):
    trainer, exported = trained
    out = predict(exported, [str(p) for p in pngs], top_k=2)
    assert isinstance(out, Predictions) and len(out) == 4
    meta = trainer.data.meta()
    expected = reference_logits(trainer.model, meta, load_images(pngs, in_channels=1, image_size=16))
    assert torch.equal(out.logits, expected)
    assert torch.equal(out.indices, expected.argmax(dim=1))
    torch.testing.assert_close(out.probabilities.sum(dim=1), torch.ones(4))
    assert out.names == ["cat", "dog", "frog", "dog"]  # the class names map to the right images
    assert out.sources == [str(p) for p in pngs] and out.targets is None


def test_tensor_inputs_match_the_reference(trained):
    trainer, exported = trained
    images = trainer.data.test.images[:5]
    expected = reference_logits(trainer.model, trainer.data.meta(), images)
    loaded = load_model(exported)
    batch = predict(loaded, images, batch_size=2)
    assert torch.equal(batch.indices, expected.argmax(dim=1))
    torch.testing.assert_close(batch.logits, expected)
    one = predict(loaded, images[0])
    assert one.indices.tolist() == [int(expected[0].argmax())] and one.sources == ["tensor[0]"]
    bare = predict(trainer.model, images, meta=trainer.data.meta())
    assert torch.equal(bare.logits, expected)


def test_dataset_split_predictions_carry_the_labels(trained):
    trainer, exported = trained
    out = predict(exported, trainer.data.test)
    assert torch.equal(out.targets, trainer.data.test.targets)
    assert trainer.loaders.kind == "device"  # the Trainer's own evaluation batches, bit for bit
    x = torch.cat([batch for batch, _ in trainer.loaders.test.iter_epoch(0)])
    with torch.no_grad():
        assert torch.equal(out.logits, trainer.model(x))
    assert (out.indices == out.targets).float().mean() > 0.9
    assert out.names == [CLASSES[i] for i in out.indices.tolist()]


class PILSplit(Dataset):
    """A generic dataset yielding (PIL image, label), as torchvision datasets do."""

    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return Image.fromarray(self.images[i, 0].numpy(), "L"), int(self.targets[i])


def test_generic_dataset_of_pil_images(trained):
    trainer, exported = trained
    split = trainer.data.test
    out = predict(exported, PILSplit(split.images[:7], split.targets[:7]), batch_size=3)
    direct = predict(exported, split.images[:7])
    assert torch.equal(out.indices, direct.indices)
    assert out.targets.tolist() == split.targets[:7].tolist()


def test_top_and_table(trained, pngs):
    _, exported = trained
    out = predict(exported, pngs, top_k=2)
    top = out.top()
    assert [len(t) for t in top] == [2] * 4
    assert top[0][0][0] == "cat" and top[0][0][1] >= top[0][1][1]
    assert len(out.top(10)[0]) == 3  # at most the number of classes
    lines = out.table().splitlines()
    assert lines[0].split() == ["image", "top-1", "top-2"]
    assert len(lines) == 5 and lines[1].startswith(str(pngs[0])) and "cat (" in lines[1]
    with pytest.raises(ConfigError):
        out.top(0)


def test_predict_from_a_path_prints_a_table(trained, pngs):
    trainer, exported = trained
    for source in (exported, trainer.run_dir.root / "last.ckpt"):
        text = predict(str(source), [str(p) for p in pngs], top_k=3, device="cpu").table()
        lines = text.splitlines()
        assert len(lines) == 5 and lines[0].split()[-1] == "top-3"
        assert lines[3].split()[:2] == [str(pngs[2]), "frog"]


def test_missing_image_is_named_before_the_model_is_loaded(trained, pngs, tmp_path):
    _, exported = trained
    missing = tmp_path / "nope.png"
    with pytest.raises(DataError, match=r"nope\.png"):
        predict(exported, [pngs[0], missing])
    with pytest.raises(DataError, match=r"nope\.png"):  # checked before the (bad) checkpoint
        predict(str(tmp_path / "no_such.ckpt"), [str(missing)], top_k=1, device="cpu")
    with pytest.raises(CheckpointError):
        predict(str(tmp_path / "no_such.ckpt"), [str(pngs[0])], top_k=1, device="cpu")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken\.png"):
        predict(exported, [broken])


def test_bad_inputs_give_clear_errors(trained):
    trainer, exported = trained
    loaded = load_model(exported)
    images = trainer.data.test.images[:2]
    with pytest.raises(ConfigError, match="meta"):
        predict(trainer.model, images)
    with pytest.raises(DataError, match="uint8"):
        predict(loaded, images.float() / 255)
    with pytest.raises(ShapeError, match="3-channel"):
        predict(loaded, images.expand(-1, 3, -1, -1))
    with pytest.raises(ConfigError, match="DataBundle"):
        predict(loaded, trainer.data)
    with pytest.raises(ConfigError, match="top_k"):
        predict(loaded, images, top_k=0)
    with pytest.raises(ConfigError, match="cannot read images"):
        predict(loaded, 42)
    with pytest.raises(DataError, match="No images"):
        predict(loaded, [])
    wrong = dict(trainer.data.meta(), class_names=["a", "b"])
    with pytest.raises(ShapeError, match="3 outputs"):
        predict(trainer.model, images, meta=wrong)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_an_error(trained):
    _, exported = trained
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        predict(exported, torch.zeros(1, 1, 16, 16, dtype=torch.uint8), device="cuda")


@pytest.mark.cuda
def test_device_mismatch_is_an_error_not_a_silent_move(trained):
    trainer, exported = trained
    images = trainer.data.test.images[:4]
    with pytest.raises(DeviceError, match="is on cpu"):
        predict(trainer.model, images, meta=trainer.data.meta(), device="cuda")
    on_gpu = predict(exported, images, device="cuda")
    assert torch.equal(on_gpu.indices, predict(exported, images).indices)


def test_docstring_examples_run(tmp_path, monkeypatch):
    import doctest
    import importlib

    # the module, even where fk exports a function of the same name
    module = importlib.import_module("finetune_kit.inference.predict")
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
