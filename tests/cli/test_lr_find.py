"""finetune-kit lr-find: the suggestion next to the config's lr, the curve written; train --lr find."""

from __future__ import annotations

import json

import pytest

from finetune_kit.cli import main
from finetune_kit.config import load_config

CONFIG = """
[data]
dataset = "fake"
val_fraction = 0.2
options = {{train_size = 80, test_size = 20, num_classes = 3, in_channels = 1, image_size = 16}}
[loader]
batch_size = 16
[model]
name = "lenet"
options = {{input_size = 16}}
[optim]
lr = 0.02
[train]
epochs = 1
output_dir = "{run}"
{extra}
"""


def write(tmp_path, extra=""):
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(run=(tmp_path / "runs" / "x").as_posix(), extra=extra))
    return path


def test_lr_find_prints_the_suggestion_and_writes_the_curve(tmp_path, capsys):
    config = write(tmp_path)
    assert main(["lr-find", "--config", str(config), "--num-steps", "40", "--set", "optim.momentum=0.8"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "runs" / "x-lr-find" / "lr_find.json").read_text())
    assert f"suggested lr: {result['suggested']:.3g} (valley" in out
    assert "config's lr:  0.02" in out
    assert (tmp_path / "runs" / "x-lr-find" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert len(result["lrs"]) == len(result["losses"]) <= 40
    assert not (tmp_path / "runs" / "x").exists()  # the run's own directory stays free
    other = tmp_path / "elsewhere"
    assert main(["lr-find", "--config", str(config), "--num-steps", "20", "--output-dir", str(other)]) == 0
    assert (other / "lr_find.json").is_file()


def test_lr_find_refuses_a_recipe_config(tmp_path, capsys):
    config = write(tmp_path)
    config.write_text(config.read_text().replace("[train]", "[finetune]\nrecipe = 'two_stage'\n[train]"))
    assert main(["lr-find", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finetune-kit: error: ") and 'optim.lr = "find"' in err


def test_train_with_lr_find_records_the_found_lr(tmp_path, capsys):
    config = write(tmp_path, extra="progress = false")
    run = tmp_path / "runs" / "x"
    assert main(["train", "--config", str(config), "--lr", "find", "--no-test"]) == 0
    found = load_config(run / "config.toml").optim.lr
    assert isinstance(found, float) and found == json.loads((run / "lr_find.json").read_text())["suggested"]
    err = capsys.readouterr().err
    assert "epoch 1/1  train loss" in err  # progress off: one plain line per epoch
    with pytest.raises(SystemExit) as exit_info:  # argparse: neither a number nor "find"
        main(["train", "--config", str(config), "--lr", "fast"])
    assert exit_info.value.code == 2 and "expected a number or 'find'" in capsys.readouterr().err
