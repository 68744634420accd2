"""Grad-CAM: heatmaps for every registry CNN, the model left as it was, and real Fashion-MNIST.

The real-data check places Fashion-MNIST garments at random positions on an empty 44x44 canvas,
trains a small CNN briefly with the Trainer, and measures the share of each heatmap that lies on
the garment's pixels: a trained model's heat must find the garment, a random model's does not.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.errors import ConfigError, OutputDirError, ShapeError
from finetune_kit.inference.gradcam import explain, explanation_paths, find_target_layer
from finetune_kit.models import MODELS, model_info


@pytest.mark.parametrize("name", fk.list_models())
def test_every_registry_model_gets_heatmaps(name):
    model = fk.create_model(name, num_classes=3, in_channels=1)
    info = model_info(model)
    fixed = info.min_input_size == info.input_size  # convnet, lenet: built for one size
    side = info.input_size[0] if fixed else max(32, info.min_input_size[0])
    out = explain(model, torch.randn(1, 1, side, side), targets=[2])
    assert out.heatmaps.shape == (1, side, side)
    assert out.targets.tolist() == [2] and out.probabilities.shape == (1, 3)
    peak = float(out.heatmaps.max())  # scaled to a peak of 1; 0 everywhere: no positive evidence
    assert float(out.heatmaps.min()) >= 0.0 and (peak == pytest.approx(1.0) or peak == 0.0)
    stage_modules = {m for _, modules in info.stages[:-1] for m in modules}
    assert out.layer in stage_modules  # a feature map of the body, never the head's output


def test_the_model_is_left_as_it_was_and_frozen_models_work():
    model = fk.create_model("resnet9", num_classes=3, in_channels=1).train()
    for p in model.parameters():
        p.requires_grad_(False)  # a fully frozen model still gets heat (through its input)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = explain(model, torch.randn(3, 1, 32, 32))
    assert out.layer == "layer3" and float(out.heatmaps.amax(dim=(1, 2)).min()) > 0
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_layer_moves_up_when_the_last_map_is_1x1():
    model = fk.create_model("resnet18", num_classes=3, in_channels=1)  # /32: layer4 is 1x1 at 28 px
    assert find_target_layer(model, torch.zeros(1, 1, 28, 28)) == "layer3"
    assert find_target_layer(model, torch.zeros(1, 1, 64, 64)) == "layer4"


def test_heat_follows_the_evidence_of_a_known_model():
    """A hand-made CNN whose class-1 evidence is the top half: the heat is there."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data.fill_(1.0)
    head = nn.Linear(1, 2, bias=False)
    head.weight.data = torch.tensor([[0.0], [1.0]])
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = torch.zeros(1, 1, 8, 8)
    x[..., :4, :] = 1.0  # bright top half
    heat = explain(model, x, targets=[1]).heatmaps[0]
    assert float(heat[:4].mean()) == pytest.approx(1.0) and float(heat[6:].max()) < 0.1


def test_bad_inputs_give_clear_errors(tmp_path):
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ConfigError, match="spatial output"):
        explain(mlp, torch.zeros(1, 1, 4, 4))
    net = fk.create_model("convnet", num_classes=2, in_channels=1)
    with pytest.raises(ConfigError, match="no module 'nope'"):
        explain(net, torch.zeros(1, 1, 28, 28), layer="nope")
    with pytest.raises(ShapeError, match="2 targets"):
        explain(net, torch.zeros(1, 1, 28, 28), targets=[0, 1])
    with pytest.raises(ConfigError, match="needs meta"):
        explain(net, torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    (tmp_path / "a.gradcam.png").write_bytes(b"mine")
    with pytest.raises(OutputDirError, match="Refusing to replace"):
        explanation_paths(tmp_path, ["a"])
    assert (tmp_path / "a.gradcam.png").read_bytes() == b"mine"


def test_predict_explain_writes_one_heatmap_per_image(tmp_path, capsys):
    data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16, train_size=32, test_size=8)
    model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
    run = tmp_path / "run"
    fk.Trainer(model, data, epochs=1, batch_size=16, verbosity=0, plots=False, output_dir=str(run)).fit()
    images = []
    for i, level in enumerate((30, 200)):
        images.append(tmp_path / f"img{i}.png")
        Image.new("L", (16, 16), level).save(images[-1])
    argv = ["predict", "--checkpoint", str(run), *map(str, images), "--explain", str(tmp_path / "heat")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "img0.png" in out and "Grad-CAM" in out
    for i in range(2):
        with Image.open(tmp_path / "heat" / f"img{i}.gradcam.png") as png:
            assert png.format == "PNG"
    assert main(argv) == 2  # the files exist now: never replaced
    assert "Refusing to replace" in capsys.readouterr().err


# ------------------------------------------------------------------------------- real data
class TinyGapNet(nn.Module):
    """conv-BN-ReLU blocks of 8, 16 and 32 channels, two max-pools, global average pool, linear."""

    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.block1, self.pool1 = block(in_channels, 8), nn.MaxPool2d(2)
        self.block2, self.pool2 = block(8, 16), nn.MaxPool2d(2)
        self.block3 = block(16, 32)
        self.pool, self.flatten, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.pool2(self.block2(self.pool1(self.block1(x)))))
        return self.fc(self.flatten(self.pool(x)))


def on_canvas(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """Each 28x28 image pasted at a random position of an empty ``side`` x ``side`` canvas."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros(images.shape[0], 1, side, side, dtype=torch.uint8)
    corners = torch.randint(0, side - 28 + 1, (images.shape[0], 2), generator=gen)
    for image, (r, c), canvas in zip(images, corners.tolist(), out, strict=True):
        canvas[:, r : r + 28, c : c + 28] = image
    return out


def heat_share(explanation, garment: torch.Tensor) -> float:
    heat = explanation.heatmaps
    return float(((heat * garment).sum((1, 2)) / heat.sum((1, 2)).clamp(min=1e-12)).mean())


@pytest.fixture
def tiny_gap_net():
    fk.register_model(
        "explain_tiny_gap", lambda num_classes, in_channels, **kw: TinyGapNet(num_classes, in_channels)
    )
    yield "explain_tiny_gap"
    MODELS.unregister("explain_tiny_gap")


@pytest.mark.slow
def test_on_fashion_mnist_the_heat_lies_on_the_garment(fashion_mnist_dir, tiny_gap_net, tmp_path):
    fmnist = fk.create_datasets("fashion_mnist", root=str(fashion_mnist_dir), val_fraction=0.0, preset="none")
    train = (on_canvas(fmnist.train.images[:8192], 44, seed=0), fmnist.train.targets[:8192])  # 64 steps
    test = (on_canvas(fmnist.test.images[:300], 44, seed=1), fmnist.test.targets[:300])
    data = fk.create_datasets("tensors", train=train, test=test, val_fraction=0.0)
    trained = fk.create_model(tiny_gap_net, num_classes=10, in_channels=1, seed=0)
    random = fk.create_model(tiny_gap_net, num_classes=10, in_channels=1, seed=1)
    trainer = fk.Trainer(
        trained, data, epochs=1, batch_size=128, lr=0.1, scheduler="onecycle", nesterov=True,
        verbosity=0, plots=False, device="cpu", output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    trainer.fit()
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    inputs = (test[0].float() / 255 - mean) / std
    garment = (test[0][:, 0] > 0).float()  # the garment's non-zero pixels; the rest is empty canvas
    area = float(garment.mean())
    shares, accuracy = {}, {}
    for label, model in (("trained", trained), ("random", random)):
        explanation = explain(model, inputs, targets=test[1])
        accuracy[label] = float((explanation.probabilities.argmax(1) == test[1]).float().mean())
        shares[label] = heat_share(explanation, garment)
        print(f"{label}: accuracy {accuracy[label]:.3f}, heat on the garment {shares[label]:.3f}")
    print(f"garment area {area:.3f}")
    # measured: accuracy 0.347 and 0.133, heat on the garment 0.514 and 0.286, garment area 0.202
    assert accuracy["trained"] > 0.3 and accuracy["random"] < 0.2  # chance is 0.1
    assert shares["trained"] > 2 * area  # the heat is drawn to the garment...
    assert shares["trained"] > shares["random"] + 0.15  # ... as a random model's is not
