"""best.toml trains as it is; the final run retrains the best config, resumes, and reports once."""

from __future__ import annotations

import json

from finetune_kit.cli import main
from finetune_kit.config import load_config
from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.best import best_config, retrain, write_best_toml


def best_trial(lr: float = 0.05):
    optuna = require_optuna()
    trial = optuna.trial.create_trial(
        value=0.75,
        params={"optim.lr": lr, "finetune.strategy": "freeze_first", "finetune.options.n": 1},
        distributions={
            "optim.lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
            "finetune.strategy": optuna.distributions.CategoricalDistribution(["full", "freeze_first"]),
            "finetune.options.n": optuna.distributions.CategoricalDistribution([1, 2]),
        },
    )
    trial.number = 0  # as the study numbers it
    return trial


def test_best_toml_is_the_base_with_the_best_values(small_study, tmp_path, capsys):
    base, space = small_study
    trial = best_trial()
    config = best_config(base, space, trial, tmp_path / "study")
    path = tmp_path / "best.toml"
    write_best_toml(config, path, study="demo", trial=trial, metric="val_accuracy")
    text = path.read_text()
    assert text.startswith("# Best trial 0 of study 'demo': val_accuracy = 0.75\n")
    loaded = load_config(path)
    assert loaded == config and loaded.finetune.options == {"n": 1} and loaded.model == base.model
    assert loaded.train.output_dir == str(tmp_path / "study" / "final-trial-0000")
    assert main(["train", "--config", str(path), "--no-test"]) == 0  # ready for finetune-kit train


def test_retrain_tests_once_and_resumes_a_stopped_final_run(small_study, tmp_path, capsys):
    base, space = small_study
    config = best_config(base, space, best_trial(), tmp_path / "study")
    assert (
        main(["train", "--config", _write(config, tmp_path), "--no-test", "--set", "train.max_steps=2"]) == 0
    )
    assert not (tmp_path / "study" / "final-trial-0000" / "report.json").exists()  # stopped early
    report = retrain(config)  # continues from last.ckpt, then tests
    saved = json.loads((tmp_path / "study" / "final-trial-0000" / "report.json").read_text())
    assert report.accuracy == saved["accuracy"]
    capsys.readouterr()
    assert retrain(config)["accuracy"] == saved["accuracy"]
    assert "Final run already done" in capsys.readouterr().out


def _write(config, tmp_path) -> str:
    path = tmp_path / "final.toml"
    write_best_toml(config, path, study="demo", trial=best_trial(), metric="val_accuracy")
    return str(path)
