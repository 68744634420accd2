"""A study's config file: the base config and its [tune] section; finetune-kit train refuses it."""

from __future__ import annotations

import pytest

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import load_tune_config

from .conftest import study_text


def test_the_base_config_the_space_and_overrides(study_file):
    config, space = load_tune_config(study_file, ["optim.momentum=0.8", "train.epochs=3"])
    assert (config.optim.momentum, config.train.epochs, config.model.name) == (0.8, 3, "lenet")
    assert space.keys == ["optim.lr", "finetune.strategy", "finetune.options.n"]


def test_a_file_without_a_tune_section(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text("[train]\nepochs = 2\n")
    with pytest.raises(ConfigError, match=r"no \[tune\] section: add one entry per config key"):
        load_tune_config(path)


def test_a_bad_key_names_the_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(study_text(space='[tune]\n"optim.lrr" = [0.1]\n'))
    with pytest.raises(ConfigError, match=r"study.toml: \[tune\]: unknown config key 'optim.lrr'"):
        load_tune_config(path)


def test_train_refuses_a_study_file_and_names_tune(study_file, capsys):
    with pytest.raises(ConfigError, match="finetune-kit tune --config FILE"):
        fk.load_config(study_file)
    assert main(["train", "--config", str(study_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "[tune] is a search space for `finetune-kit tune --config FILE`" in err
    assert len(err.splitlines()) == 1


def test_the_example_study_is_valid():
    from pathlib import Path

    from finetune_kit.tuning.validate import check_study

    path = Path(__file__).parents[2] / "examples" / "configs" / "tune" / "quickstart.toml"
    config, space = load_tune_config(path)
    check_study(config, space, "val_accuracy")
    assert config.data.dataset == "fashion_mnist" and "optim.lr" in space.keys
