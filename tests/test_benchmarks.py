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
@pytest.mark.parametrize(
    "name",
    ["common", "trainer_overhead", "throughput", "time_to_accuracy", "cpu_time_to_accuracy", "gpu_suite"],
)
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


def test_deploy_latency_times_both_runtimes_and_the_startup(bench, tmp_path, capsys):
    latency = bench("deploy_latency")
    argv = ["--models", "convnet", "--batch", "4", "--repeats", "2", "--startup-repeats", "1"]
    result = latency.main([*argv, "--json", str(tmp_path / "l.json")])
    rows = result["speed"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [
        ("torch eager", 1),
        ("onnxruntime", 1),
        ("torch eager", 4),
        ("onnxruntime", 4),
    ]
    assert all(r["img_s"] > 0 and math.isfinite(r["ms_per_call"]) for r in rows)
    assert [r["predict"].split()[0] for r in result["startup"]] == ["onnxruntime", "torch"]
    assert all(r["median_s"] > 0 for r in result["startup"])
    assert json.loads((tmp_path / "l.json").read_text())["environment"]["threads"] == 1
    printed = capsys.readouterr().out
    assert "| model | runtime | batch | ms_per_call | img_s |" in printed and "# CPU:" in printed


def test_deploy_parity_reports_both_artifacts(bench):
    parity = bench("deploy_parity")
    assert sorted(parity.CASES) == fk.list_models()  # the table covers every registered model
    result = parity.main(["--models", "lenet", "--batch", "3"])
    [row] = result["results"]
    assert row["model"] == "lenet" and row["input"] == "1x32x32"
    assert 0 <= row["onnx_max_abs_diff"] <= 1e-4 and row["torch_export_max_abs_diff"] <= 1e-4
    assert row["logit_std"] > 1e-2


# ------------------------------------------------------------------ CPU time to accuracy
QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "configs" / "quickstart.toml"


def test_cpu_hand_model_is_the_library_model(bench):
    cpu_tta = bench("cpu_time_to_accuracy")
    library = fk.create_model("bn_convnet", num_classes=10, in_channels=1, width=8, seed=3)
    hand = cpu_tta.hand_model(1, 10, width=8)
    cpu_tta.copy_state(library, hand)
    x = torch.randn(4, 1, 28, 28)
    library.eval(), hand.eval()
    assert torch.equal(library(x), hand(x))
    with pytest.raises(ValueError, match="does not match"):
        cpu_tta.copy_state(library, cpu_tta.hand_model(1, 10, width=4))


def test_cpu_hand_schedule_is_the_library_onecycle(bench):
    cpu_tta = bench("cpu_time_to_accuracy")
    recipe = cpu_tta.Recipe.from_config(fk.load_config(QUICKSTART))
    params = [torch.nn.Parameter(torch.zeros(2))]
    hand = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9)
    hand_sched = torch.optim.lr_scheduler.OneCycleLR(hand, max_lr=recipe.lr, total_steps=12)
    ours = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9)
    our_sched = fk.create_scheduler(ours, "onecycle", epochs=3, steps_per_epoch=4)
    for _ in range(11):
        assert hand.param_groups[0]["lr"] == pytest.approx(ours.param_groups[0]["lr"])
        assert hand.param_groups[0]["momentum"] == pytest.approx(ours.param_groups[0]["momentum"])
        hand.step(), ours.step()  # no gradients: the steps change nothing but the schedules' order
        hand_sched.step(), our_sched.step()


def test_cpu_hand_loop_refuses_a_recipe_it_does_not_implement(bench):
    cpu_tta = bench("cpu_time_to_accuracy")
    config = fk.apply_overrides(
        fk.load_config(QUICKSTART), ["loader.augment=true", "optim.optimizer='adamw'"]
    )
    with pytest.raises(fk.ConfigError, match="differs in: optimizer, augment"):
        cpu_tta.Recipe.from_config(config)


def test_cpu_time_to_accuracy_runs_both_loops_in_abab_order(bench, tmp_path, fashion_mnist_dir, capsys):
    cpu_tta = bench("cpu_time_to_accuracy")
    result = cpu_tta.main(
        [
            *("--data-root", str(fashion_mnist_dir), "--train-size", "512", "--test-size", "256"),
            *("--epochs", "1", "--threshold", "0", "--repeats", "2", "--threads", "1"),
            *("--json", str(tmp_path / "c.json")),
        ]
    )
    assert [(r["pair"], r["loop"]) for r in result["runs"]] == [
        (1, "library"),
        (1, "hand"),
        (2, "library"),
        (2, "hand"),
    ]
    for run in result["runs"]:
        (row,) = run["rows"]
        assert 0.0 <= row["test_acc"] <= 1.0 and 0 < row["fit_s"] <= run["total_s"]
    summary = result["summary"]
    assert math.isfinite(summary["ratio_wall"]) and len(summary["pair_ratios_cpu"]) == 2
    assert json.loads((tmp_path / "c.json").read_text())["threshold"] == 0.0
    assert "library / hand, time to 0.0% (wall)" in capsys.readouterr().out


def test_cpu_settings_measures_every_combination_against_the_first(bench, tmp_path):
    settings = bench("cpu_settings")
    before = torch.get_num_threads()
    result = settings.main(
        [
            *("--models", "lenet_16", "--batch-size", "4", "--batches", "1", "--warmup", "1"),
            *("--repeats", "2", "--threads", "1", "--settings", "nchw/32", "nhwc/bf16-mixed"),
            *("--json", str(tmp_path / "s.json")),
        ]
    )
    rows = result["rows"]
    assert [(r["threads"], r["format"], r["precision"]) for r in rows] == [
        (1, "nchw", "32"),
        (1, "nhwc", "bf16-mixed"),
    ]
    assert rows[0]["speedup_cpu"] == 1.0 and all(r["cpu_ms"] >= 0 for r in rows)
    assert torch.get_num_threads() == before and (tmp_path / "s.json").exists()


# ------------------------------------------------------------------------------ GPU suite
def test_gpu_suite_without_a_gpu_says_so_and_runs_nothing(bench, tmp_path, monkeypatch, capsys):
    suite = bench("gpu_suite")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert suite.main(["--out", str(tmp_path / "out")]) == {"status": "skipped", "reason": "no CUDA GPU"}
    assert "no CUDA GPU here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_gpu_suite_knows_the_cuda_test_files(bench):
    files = bench("gpu_suite").cuda_test_files()
    assert Path(__file__) in files and all("pytest.mark.cuda" in f.read_text() for f in files)


def test_gpu_suite_smoke_run_writes_json_and_markdown(bench, tmp_path, fashion_mnist_dir, monkeypatch):
    suite = bench("gpu_suite")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    record = suite.main(
        ["--smoke", "--data-dir", str(fashion_mnist_dir), "--out", str(out), "--skip", "cuda_tests"]
    )
    assert {record[k]["status"] for k in ("throughput", "time_to_94", "conv")} == {"ok"}, record
    assert record["conv"]["result"]["verify_passed"]
    assert json.loads((out / "gpu_suite.json").read_text())["smoke"] is True
    markdown = (out / "gpu_suite.md").read_text()
    assert "| throughput | ok |" in markdown and "c/b" in markdown and "ResNet-18 convolutions" in markdown
