"""The benchmark scripts keep working: each runs end to end at its smallest sizes.

The scripts live in ``benchmarks/`` (not a package); they are imported from there by name and
their ``main(argv)`` is called in this process, so torch is imported once. The helpers they
share (``benchmarks/common.py``) are checked against the library where a reference exists.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import finetune_kit as fk
from finetune_kit.data import DeviceLoader, ImageTensorDataset
from finetune_kit.data.augment import crop_flip

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FAST_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "fashion_mnist_fast.toml"


@pytest.fixture
def bench(monkeypatch):
    """Import a benchmark module by name (``bench("throughput")``)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


# ------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("name", ["common", "trainer_overhead", "throughput", "time_to_accuracy"])
def test_doctests(bench, name):
    result = doctest.testmod(bench(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("padding", [0, 1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_hand_crop_flip_matches_the_library(bench, padding, channels_last):
    hand = bench("trainer_overhead")
    g = torch.Generator().manual_seed(padding)
    x = torch.randint(0, 256, (6, 3, 5, 7), dtype=torch.uint8, generator=g)
    top = torch.randint(0, 2 * padding + 1, (6,), generator=g)
    left = torch.randint(0, 2 * padding + 1, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    got = hand.crop_flip_gather(x, top, left, flip, padding, channels_last=channels_last)
    assert torch.equal(got, crop_flip(x, top, left, flip, padding=padding))
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_hand_crop_flip_draws_every_offset(bench):
    hand = bench("trainer_overhead")
    x = torch.zeros(400, 1, 4, 4, dtype=torch.uint8)
    x[:, :, 0, 0] = 1  # a marker pixel: where it lands tells the offset and the flip
    out = hand.hand_crop_flip(x, 1, channels_last=False)
    assert out.shape == x.shape
    positions = {tuple(idx[2:].tolist()) for idx in out.nonzero()}
    assert {(0, 0), (1, 1), (0, 3), (1, 2)} <= positions  # shifted, and mirrored


def test_flip_tta_evaluate_averages_softmax_of_image_and_mirror(bench):
    tta_script = bench("time_to_accuracy")
    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 3, 3), dtype=torch.uint8)
    targets = torch.arange(10) % 3
    loader = DeviceLoader(
        ImageTensorDataset(images, targets, ["a", "b", "c"]), batch_size=4, mean=(0.5,), std=(0.25,)
    )
    net = nn.Sequential(nn.Flatten(), nn.Linear(9, 3))
    got = tta_script.flip_tta_evaluate(net, loader, device=torch.device("cpu"))
    x = torch.cat([xb for xb, _ in loader.iter_epoch(0)])
    with torch.no_grad():
        probs = net(x).softmax(1)
        tta = probs + net(x.flip(-1)).softmax(1)
    assert got["images"] == 10
    assert got["accuracy"] == pytest.approx((probs.argmax(1) == targets).float().mean().item())
    assert got["tta_accuracy"] == pytest.approx((tta.argmax(1) == targets).float().mean().item())
    assert (
        tta_script.flip_tta_evaluate(net, loader, device=torch.device("cpu"), flip=False)["tta_accuracy"]
        == got["accuracy"]
    )


def test_step_window_times_only_the_window(bench, tmp_path):
    common = bench("common")
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=8, val_fraction=0
    )
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    window = common.StepWindow(warmup=2, steps=3, images_per_step=8)
    trainer = fk.Trainer(
        model,
        data,
        callbacks=[window],
        epochs=1,
        batch_size=8,
        max_steps=5,
        progress=False,
        output_dir=str(tmp_path / "run"),
    )
    trainer.fit()
    assert trainer.state.global_step == 5
    assert window.images == 24 and window.seconds > 0 and window.cpu_seconds >= 0
    assert math.isfinite(window.images_per_second)
    assert math.isnan(common.StepWindow(warmup=9, steps=1, images_per_step=1).images_per_second)


def test_fast_recipe_config_is_the_documented_recipe():
    config = fk.load_config(FAST_CONFIG)
    assert (config.model.name, config.loader.batch_size, config.optim.scheduler) == (
        "resnet9",
        500,
        "onecycle",
    )
    assert config.optim.label_smoothing > 0 and config.optim.ema is not None
    assert config.optim.grad_clip is not None  # resnet9 diverges unclipped (docs/benchmarks.md)
    assert config.train.precision == "bf16-mixed" and config.data.val_fraction == 0
    assert config.train.tta == "flip"
    model = fk.create_model(config.model.name, num_classes=10, in_channels=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


# ---------------------------------------------------------------------------- the scripts
def test_throughput_runs_all_three_loops(bench, tmp_path, capsys):
    throughput = bench("throughput")
    out = tmp_path / "t.json"
    result = throughput.main(
        [
            "--device",
            "cpu",
            "--models",
            "lenet_16",
            "--batch-size",
            "8",
            "--plain-batch-size",
            "8",
            "--batches",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
        ]
    )
    rows = result["results"]
    assert [r["loop"] for r in rows] == ["plain", "hand", "trainer"]
    assert all(r["img_s"] > 0 and math.isfinite(r["img_s"]) for r in rows)
    assert result["ratios"][0]["c/a"] > 0 and result["ratios"][0]["c/b"] > 0
    assert json.loads(out.read_text())["ratios"][0]["model"] == "lenet_16"
    printed = capsys.readouterr().out
    assert "| model | c/a | c/b |" in printed and "# CPU:" in printed


def test_trainer_overhead_reports_paired_repeats(bench, tmp_path):
    overhead = bench("trainer_overhead")
    result = overhead.main(
        [
            "--model",
            "lenet_16",
            "--batch-size",
            "8",
            "--batches",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--augment",
            "--json",
            str(tmp_path / "o.json"),
        ]
    )
    assert len(result["repeats"]) == 2
    assert result["summary"]["step_ratio"]["n"] == 2
    assert math.isfinite(result["step_overhead"]) and math.isfinite(result["run_overhead"])
    assert (tmp_path / "o.json").exists()


def test_time_to_accuracy_on_real_fashion_mnist(bench, tmp_path, fashion_mnist_dir):
    tta = bench("time_to_accuracy")
    result = tta.main(
        [
            "--device",
            "cpu",
            "--data-root",
            str(fashion_mnist_dir),
            "--set",
            "model.name=convnet",
            "--train-size",
            "256",
            "--test-size",
            "128",
            "--batch-size",
            "64",
            "--epochs",
            "2",
            "--threshold",
            "0.0",
            "--stop-at-threshold",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    rows = result["epochs"]
    assert [r["epoch"] for r in rows] == [1]  # threshold 0: reached, and stopped, at epoch 1
    assert result["reached"] == rows[0] == result["best_within_budget"]
    assert 0.0 <= rows[0]["test_acc_tta"] <= 1.0 and 0 < rows[0]["fit_s"] <= rows[0]["wall_s"]
    assert rows[0]["epoch_end_s"] >= 0  # the checkpoint and logs after the evaluation
    assert 0.0 <= rows[0]["raw_acc_tta"] <= 1.0  # --scale cpu also evaluates the raw weights
    assert result["sizes"]["train_size"] == 256
    assert json.loads((tmp_path / "r.json").read_text())["reached"]["epoch"] == 1


def test_time_to_accuracy_callback_keeps_the_best_within_a_budget(bench):
    callback = bench("time_to_accuracy").TimeToAccuracy(threshold=0.9)
    callback.rows = [
        {"fit_s": 1.0, "test_acc_tta": 0.8},
        {"fit_s": 2.0, "test_acc_tta": 0.9},
        {"fit_s": 3.0, "test_acc_tta": 0.95},
    ]
    assert callback.best_within(2.5)["test_acc_tta"] == 0.9
    assert callback.best_within(0.5) is None


# ------------------------------------------------------------------------------ on a GPU
@pytest.mark.cuda
def test_throughput_on_cuda_counts_host_syncs(bench):
    throughput = bench("throughput")
    result = throughput.main(
        [
            "--device",
            "cuda",
            "--models",
            "resnet9_32",
            "--batch-size",
            "64",
            "--plain-batch-size",
            "64",
            "--batches",
            "20",
            "--warmup",
            "3",
            "--sync-debug",
        ]
    )
    rows = {r["loop"]: r for r in result["results"]}
    assert all(r["precision"] == "bf16-mixed" for r in rows.values() if r["loop"] != "plain")
    assert 0 <= rows["hand"]["syncs"] <= 1  # at most its once-per-epoch randperm waits


@pytest.mark.cuda
def test_trainer_reads_the_device_at_most_once_per_log_interval(bench):
    throughput = bench("throughput")
    result = throughput.main(
        [
            "--device",
            "cuda",
            "--models",
            "resnet9_32",
            "--batch-size",
            "64",
            "--batches",
            "20",
            "--warmup",
            "3",
            "--loops",
            "trainer",
            "--sync-debug",
        ]
    )
    assert result["results"][0]["syncs"] <= 1  # NaNGuard reads the loss every 50 steps
