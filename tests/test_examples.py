"""Every example runs (``--smoke``) and every example config loads and trains.

Each recipe script runs in a subprocess exactly as a user would start it,
``python examples/<recipe>.py --smoke --output-dir DIR``: fake data shaped like the real dataset
(or a tiny real subset of Fashion-MNIST when it is installed), no pretrained weights, one short
epoch. A proxy that refuses connections is set, so an accidental download fails instead of
reaching the network. Each ``examples/configs/*.toml`` loads with :func:`finetune_kit.load_config`
and, for the small models, runs one epoch through the ``finetune-kit train`` command on fake data
of the same shape (the ResNet configs have every part they name built instead).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import tomllib

import finetune_kit as fk
from finetune_kit.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CONFIGS = sorted((EXAMPLES / "configs").glob("*.toml"))
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

# The recipe scripts: they take the shared flags of examples/_script.py.
RECIPES = [
    "cifar10_lenet",
    "cifar10_resnet18_frozen_adamw",
    "cifar10_resnet18_imagenet",
    "cifar10_resnet50",
    "conv_from_scratch",
    "fashion_mnist_convnet",
    "mnist_convnet",
]
# Examples with flags of their own, run by another test file.
TESTED_ELSEWHERE = {
    "transfer_experiment": "tests/freezing/test_plan.py",
    "tune_transfer": "tests/tuning/test_runner.py",
}
# The shape of each dataset the configs name, for fake data that stands in for it.
SHAPES = {"cifar10": (3, 32), "cifar100": (3, 32), "mnist": (1, 28), "fashion_mnist": (1, 28)}
# Configs of these models train one epoch through the CLI; the others (ResNets, slow on a
# loaded CPU) have their parts built instead, and train in the examples' smoke runs.
CHEAP_MODELS = {"bn_convnet", "convnet", "lenet"}


def _offline_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FINETUNE_KIT_DATA"}
    refused = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        TORCH_HOME=str(home / ".cache" / "torch"),
        HTTP_PROXY=refused,
        HTTPS_PROXY=refused,
        http_proxy=refused,
        https_proxy=refused,
        NO_PROXY="",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_every_example_is_run_by_a_test():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    untested = sorted(scripts - set(RECIPES) - set(TESTED_ELSEWHERE))
    assert not untested, f"examples without a smoke test: {untested}; add them to RECIPES"
    gone = sorted((set(RECIPES) | set(TESTED_ELSEWHERE)) - scripts)
    assert not gone, f"RECIPES names scripts that do not exist: {gone}"


def test_every_recipe_has_a_config():
    configs = {p.stem for p in CONFIGS}
    missing = sorted(set(RECIPES) - configs - {"conv_from_scratch"})  # no config: see its docs
    assert not missing, f"recipes without examples/configs/<recipe>.toml: {missing}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_example_smoke_run(recipe, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, str(EXAMPLES / f"{recipe}.py"), "--smoke", "--output-dir", str(run_dir)]
    if recipe == "fashion_mnist_convnet" and not FASHION_MNIST.exists():
        command.append("--fake-data")  # no real subset on this machine
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=_offline_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "test accuracy" in result.stdout
    runs = [run_dir / "torch", run_dir / "scratch"] if recipe == "conv_from_scratch" else [run_dir]
    for run in runs:
        for name in ("config.toml", "metrics.csv", "last.ckpt", "report.json"):
            assert (run / name).is_file(), f"{recipe} --smoke did not write {run / name}"


def test_example_reports_a_library_error_in_one_line(tmp_path):
    """A bad flag value that the library rejects exits with status 2 and one line on stderr."""
    command = [
        sys.executable,
        str(EXAMPLES / "mnist_convnet.py"),
        "--smoke",
        "--device",
        "tpu",
        "--output-dir",
        str(tmp_path / "run"),
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=_offline_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "tpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads(config):
    loaded = fk.load_config(config)
    assert loaded.data.dataset in fk.list_datasets()
    assert loaded.model.name in fk.list_models()
    assert loaded.finetune.strategy in [None, *fk.list_strategies()]


def _fake_variant(config: Path, tmp_path: Path) -> Path:
    """A copy of ``config`` on fake data of the same shape, without pretrained weights."""
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    channels, size = SHAPES[raw["data"]["dataset"]]
    raw["data"].update(
        dataset="fake",
        preset="auto",
        val_fraction=0.1,
        options={"in_channels": channels, "image_size": size, "train_size": 40, "test_size": 20},
    )
    raw["model"].pop("weights", None)  # no download: random initialisation
    raw.setdefault("loader", {})["batch_size"] = 16
    raw.setdefault("train", {}).update(epochs=1, progress=False)
    path = tmp_path / config.name
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def _is_cheap(config: Path) -> bool:
    return fk.load_config(config).model.name in CHEAP_MODELS


CHEAP = [p for p in CONFIGS if _is_cheap(p)]
COSTLY = [p for p in CONFIGS if not _is_cheap(p)]


@pytest.mark.parametrize("config", CHEAP, ids=[p.stem for p in CHEAP])
def test_config_trains_through_the_cli(config, tmp_path, capsys):
    fake = _fake_variant(config, tmp_path)
    run_dir = tmp_path / "run"
    status = cli_main(["train", "--config", str(fake), "--output-dir", str(run_dir)])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert (run_dir / "report.json").is_file() and (run_dir / "last.ckpt").is_file()
    saved = fk.load_config(run_dir / "config.toml")
    original = fk.load_config(config)
    assert saved.optim == original.optim
    # the run records the strategy in force (a fresh model with none set trains fully)
    assert saved.finetune == dataclasses.replace(
        original.finetune, strategy=original.finetune.strategy or "full"
    )


@pytest.mark.parametrize("config", COSTLY, ids=[p.stem for p in COSTLY])
def test_config_parts_build(config, tmp_path):
    """The ResNet configs: every part they name builds (training them is the examples' job)."""
    cfg = fk.load_config(_fake_variant(config, tmp_path))
    channels, _ = SHAPES[fk.load_config(config).data.dataset]
    model = fk.create_model(
        cfg.model.name,
        num_classes=10,
        in_channels=channels,
        small_input=cfg.model.small_input,
        **cfg.model.options,
    )
    fk.apply_strategy(
        model, cfg.finetune.strategy or "full", bn_policy=cfg.finetune.bn_policy, **cfg.finetune.options
    )
    fk.create_loss(cfg.optim.loss, label_smoothing=cfg.optim.label_smoothing)
    optim = cfg.optim
    optimizer = fk.create_optimizer(
        model,
        optim.optimizer,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        momentum=optim.momentum,
        nesterov=optim.nesterov,
    )
    fk.create_scheduler(
        optimizer,
        optim.scheduler,
        epochs=cfg.train.epochs,
        steps_per_epoch=10,
        warmup_epochs=optim.warmup_epochs,
        **optim.scheduler_options,
    )
