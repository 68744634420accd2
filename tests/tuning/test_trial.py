"""One trial: its config and directory, and the checks it makes before training."""

from __future__ import annotations

import json

import pytest

import finetune_kit as fk
from finetune_kit.errors import ConfigError
from finetune_kit.tuning.distributed import Coordinator
from finetune_kit.tuning.trial import TrialSettings, trial_config, trial_dir


def test_a_trial_runs_the_base_config_with_its_values_in_its_own_directory(small_study, tmp_path):
    base, space = small_study
    settings = TrialSettings(base, space, "val_accuracy", tmp_path, "demo", Coordinator.for_config("cpu"))
    config = trial_config(
        settings, {"optim.lr": 0.02, "finetune.strategy": "freeze_first", "finetune.options.n": 1}, 7
    )
    assert config.train.output_dir == str(tmp_path / "trial-0007") == str(trial_dir(tmp_path, 7))
    assert (config.optim.lr, config.finetune.strategy, config.finetune.options) == (
        0.02,
        "freeze_first",
        {"n": 1},
    )
    assert config.train.progress is False and config.model == base.model


def test_a_validation_metric_without_a_validation_set_stops_before_training(small_study, tmp_path, no_plots):
    base, space = small_study
    base = fk.apply_overrides(base, ["data.val_fraction=0"])
    with pytest.raises(ConfigError, match="there is no validation set: set data.val_fraction > 0"):
        fk.tune(base, space, n_trials=2, output_dir=tmp_path / "s", verbose=False)
    assert not (tmp_path / "s" / "trial-0000").exists()  # refused before the run directory
    study = fk.tune(base, space, n_trials=0, output_dir=tmp_path / "s", verbose=False).study
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert "no validation set" in study.trials[0].user_attrs["error"]


def test_train_metrics_can_be_optimised(small_study, tmp_path, no_plots):
    base, space = small_study
    base = fk.apply_overrides(base, ["train.metrics=['f1']", "train.epochs=1"])
    result = fk.tune(base, space, n_trials=1, metric="val_f1", output_dir=tmp_path / "s", verbose=False)
    record = json.loads((tmp_path / "s" / "trial-0000" / "trial.json").read_text())
    assert record["metric"] == "val_f1" and record["value"] == result.best_value
