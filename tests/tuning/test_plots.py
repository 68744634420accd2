"""The study's figures are real PNG files, drawn once there are enough complete trials."""

from __future__ import annotations

import sys

from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.plots import write_plots

PNG = b"\x89PNG\r\n\x1a\n"


def study(complete: int):
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    result.optimize(
        lambda t: t.suggest_float("optim.lr", 1e-3, 1.0, log=True) + t.suggest_int("train.epochs", 1, 5),
        n_trials=complete,
    )
    return result


def test_three_figures_from_a_few_trials(tmp_path):
    written, skipped = write_plots(study(4), tmp_path / "plots")
    assert [p.name for p in written] == [
        "optimization_history.png", "param_importances.png", "parallel_coordinate.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG for p in written) and not skipped
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary files left


def test_too_few_trials_leave_figures_out_and_say_why(tmp_path):
    written, skipped = write_plots(study(1), tmp_path / "plots")
    assert [p.name for p in written] == ["optimization_history.png"]
    assert skipped == [
        "param_importances needs 2 complete trial(s), the study has 1",
        "parallel_coordinate needs 2 complete trial(s), the study has 1",
    ]


def test_without_matplotlib_the_figures_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert write_plots(study(2), tmp_path / "plots") == (
        [],
        ['plots need matplotlib: pip install "finetune-kit[plots]"'],
    )
