"""finetune_kit.models weights: files, checkpoints, run dirs, torchvision cache, load reports."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models import ResNet18_Weights

from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.models import LoadReport, create_model, load_weights, model_info

IMAGENET_MEAN = (0.485, 0.456, 0.406)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tests are tiny, and spinning threads only slow down a busy CI."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _equal_except(a: dict, b: dict, skip: str) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith(skip))


@pytest.fixture(scope="module")
def donor_state():
    """A seeded resnet18 with a 10-class head: stands in for 'pretrained' weights."""
    return create_model("resnet18", num_classes=10, seed=123).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_file_loads_by_path_with_report(tmp_path, donor_state, suffix):
    path = tmp_path / f"pretrained{suffix}"
    if suffix == ".pth":
        torch.save(donor_state, path)
    else:
        save_file({k: v.contiguous() for k, v in donor_state.items()}, str(path))
    model = create_model("resnet18", num_classes=7, weights=path)
    assert _equal_except(donor_state, model.state_dict(), "fc.")
    fresh = create_model("resnet18", num_classes=7)
    assert torch.equal(model.fc.weight, fresh.fc.weight)  # head keeps its seeded init
    assert model_info(model).weights == str(path)

    report = load_weights(create_model("resnet18", num_classes=7), path)
    assert report.skipped_head == ("fc.weight", "fc.bias")
    assert (report.missing, report.unexpected, report.mismatched, report.adapted) == ((),) * 4
    assert report.ok and len(report.loaded) == len(donor_state) - 2
    text = str(report)
    assert "head skipped (fc.weight, fc.bias)" in text
    assert "the weights have 10 classes, the model 7" in text

    same_classes = load_weights(create_model("resnet18", num_classes=10), path)
    assert same_classes.skipped_head == () and len(same_classes.loaded) == len(donor_state)


def test_gray_model_from_rgb_weights_matches_replicated_input(tmp_path, donor_state):
    path = tmp_path / "pretrained.pth"
    torch.save(donor_state, path)
    rgb = create_model("resnet18", num_classes=7, weights=path).eval()
    gray = create_model("resnet18", num_classes=7, in_channels=1, weights=path).eval()
    report = load_weights(create_model("resnet18", num_classes=7, in_channels=1), path)
    assert report.adapted == ("conv1.weight",)
    assert report.shapes["conv1.weight"] == ((64, 3, 7, 7), (64, 1, 7, 7))
    image = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        expected = rgb(image.expand(-1, 3, -1, -1))
        torch.testing.assert_close(gray(image), expected, rtol=1e-4, atol=1e-5)


def test_small_input_stem_starts_from_the_pretrained_conv(tmp_path, donor_state):
    path = tmp_path / "pretrained.pth"
    torch.save(donor_state, path)
    model = create_model("resnet18", num_classes=7, small_input=True, weights=path)
    kernel = donor_state["conv1.weight"]
    assert model.conv1.weight.shape == (64, 3, 3, 3)
    torch.testing.assert_close(model.conv1.weight.sum((2, 3)), kernel.sum((2, 3)))
    assert torch.equal(model.layer1[0].conv1.weight, donor_state["layer1.0.conv1.weight"])


def _lenet_state(seed: int = 1) -> dict[str, torch.Tensor]:
    return create_model("lenet", num_classes=10, seed=seed).state_dict()


def test_report_lists_missing_unexpected_and_mismatched(tmp_path):
    state = _lenet_state()
    del state["fc2.bias"]
    state["extra.weight"] = torch.zeros(3)
    state["fc1.weight"] = torch.zeros(120, 999)
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    model = create_model("lenet", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"(?s)Strict load refused.*missing \(1\): fc2.bias"):
        load_weights(model, path, strict=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    report = load_weights(model, path)
    assert report.missing == ("fc2.bias",)
    assert report.unexpected == ("extra.weight",)
    assert report.mismatched == ("fc1.weight",)
    assert report.shapes["fc1.weight"] == ((120, 999), (120, 400))
    assert not report.ok
    assert "fc1.weight (120, 999) in weights vs (120, 400) in model" in str(report)
    assert torch.equal(model.fc1.weight, before["fc1.weight"])
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    with pytest.warns(UserWarning, match="missing"):
        create_model("lenet", num_classes=10, weights=path)


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Payload()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_weights(create_model("lenet", num_classes=10), path)
    with pytest.raises(CheckpointError, match="nothing in it was run"):
        create_model("lenet", num_classes=10, weights=path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"\x80\x02garbage", "bad.pth", "Cannot read"),
        (b"not a zip", "bad.safetensors", "not a safetensors file"),
        (b"", "bad.weights", "Cannot tell what kind of weights file"),
    ],
)
def test_unreadable_files(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_weights(create_model("lenet", num_classes=10), path)


def test_truncated_missing_and_non_state_dict_files(tmp_path):
    model = create_model("lenet", num_classes=10)
    good = tmp_path / "good.pth"
    torch.save(_lenet_state(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_weights(model, truncated)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(model, tmp_path / "nope.pth")
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_weights(model, listing)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="None of the 1 tensors"):
        load_weights(model, other)


def test_checkpoint_with_model_info_and_prefixes(tmp_path):
    state = {f"module.{k}": v for k, v in _lenet_state(seed=7).items()}
    names = [f"class{i}" for i in range(10)]
    ckpt = {
        "model": state,
        "epoch": 3,
        "optimizer": {"state": {}},
        "model_info": {
            "name": "lenet",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "class_names": names,
        },
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    model = create_model("lenet", num_classes=10, weights=path)
    info = model_info(model)
    assert info.mean == (0.5, 0.5, 0.5) and info.class_names == names
    assert torch.equal(model.fc3.weight, state["module.fc3.weight"])
    other = create_model("lenet", num_classes=4, in_channels=1, weights=path)
    assert model_info(other).class_names is None and model_info(other).mean == (0.5,)


def test_safetensors_metadata_carries_model_info(tmp_path):
    path = tmp_path / "model.safetensors"
    info = {"mean": [0.2], "std": [0.3], "class_names": [str(i) for i in range(10)]}
    save_file(_lenet_state(), str(path), metadata={"model_info": json.dumps(info)})
    model = create_model("lenet", num_classes=10, in_channels=1, weights=path)
    assert model_info(model).mean == (0.2,) and model_info(model).class_names[9] == "9"


def test_run_directory_prefers_best(tmp_path):
    model = create_model("lenet", num_classes=10)
    with pytest.raises(CheckpointError, match=r"holds none of best\.ckpt, last\.ckpt"):
        load_weights(model, tmp_path)
    save_file(_lenet_state(seed=1), str(tmp_path / "model.safetensors"))
    assert load_weights(model, tmp_path).source.endswith("model.safetensors")
    torch.save({"model": _lenet_state(seed=2)}, tmp_path / "last.ckpt")
    assert load_weights(model, tmp_path).source.endswith("last.ckpt")
    best = _lenet_state(seed=3)
    torch.save({"model": best}, tmp_path / "best.ckpt")
    assert load_weights(model, str(tmp_path)).source.endswith("best.ckpt")
    assert torch.equal(model.conv1.weight, best["conv1.weight"])


def _cache_file() -> Path:
    filename = os.path.basename(urlparse(ResNet18_Weights.DEFAULT.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def test_offline_torchvision_download_names_file_and_cache():
    cached = _cache_file()
    assert Path(os.environ["TORCH_HOME"]) in cached.parents  # an empty temp dir (conftest)
    with pytest.raises(CheckpointError) as caught:
        create_model("resnet18", num_classes=7, weights="imagenet")
    message = str(caught.value)
    assert cached.name in message  # resnet18-f37072fd.pth
    assert str(cached.parent) in message
    assert "by hand" in message and f"copy it to {cached}" in message
    assert not cached.exists()


def test_torchvision_weights_placed_by_hand_are_used():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = torchvision.models.resnet18().state_dict()
    cached = _cache_file()
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, cached)

    full = create_model("resnet18", num_classes=1000, pretrained=True)
    assert all(torch.equal(v, state[k]) for k, v in full.state_dict().items())
    info = model_info(full)
    assert info.weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert info.mean == IMAGENET_MEAN and info.std == (0.229, 0.224, 0.225)
    assert len(info.class_names) == 1000 and info.class_names[0] == "tench"

    gray = create_model("resnet18", num_classes=7, in_channels=1, small_input=True)
    report = load_weights(gray, "IMAGENET1K_V1")
    assert report.skipped_head == ("fc.weight", "fc.bias") and report.adapted == ("conv1.weight",)
    info = model_info(gray)
    assert info.mean == (0.449,) and info.class_names is None and info.input_size == (32, 32)
    assert load_weights(create_model("resnet18", num_classes=2), ResNet18_Weights.DEFAULT).ok


def test_torchvision_weight_names_are_checked():
    with pytest.raises(ConfigError, match=r"Unknown weights 'IMAGENET1K_V9'.*IMAGENET1K_V1"):
        create_model("resnet18", num_classes=2, weights="IMAGENET1K_V9")
    with pytest.raises(ConfigError, match="ResNet18_Weights"):
        create_model("resnet18", num_classes=2, weights="ResNet50_Weights.IMAGENET1K_V2")
    with pytest.raises(ConfigError, match="names torchvision weights, but this model has none"):
        create_model("lenet", num_classes=2, weights="imagenet")


def test_report_str_is_readable():
    report = LoadReport(missing=tuple(f"k{i}" for i in range(12)), loaded=("a",), source="w.pt")
    text = str(report)
    assert text.startswith("Loaded 1 of 13 model tensors from w.pt.")
    assert "missing (12): k0, k1" in text and "... and 2 more" in text
