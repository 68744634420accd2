"""Studies end to end, in this process: reproducible, pruned, continued, finished with a final run."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import pytest

import finetune_kit as fk
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import load_tune_config, require_optuna
from finetune_kit.tuning.runner import counted

from .conftest import study_text


def trials_of(result) -> list[tuple]:
    return [(t.number, t.state.name, t.params, t.value) for t in result.study.trials]


def test_a_study_is_reproducible_on_the_cpu(small_study, tmp_path, no_plots):
    config, space = small_study
    first = fk.tune(config, space, n_trials=3, output_dir=tmp_path / "a", verbose=False)
    second = fk.tune(config, space, n_trials=3, output_dir=tmp_path / "b", verbose=False)
    assert trials_of(first) == trials_of(second)
    assert len({str(t.params) for t in first.study.trials}) == 3  # three different trials
    assert all(t.value is not None for t in first.study.trials)


def test_outputs_trial_directories_and_continuing_with_more_trials(small_study, tmp_path, capsys):
    config, space = small_study
    study_dir = tmp_path / "study"
    fk.tune(config, space, n_trials=2, output_dir=study_dir)
    first = capsys.readouterr().out
    assert "Study 'study'" in first and "trial    1  complete" in first and "rank  trial" in first
    before = (study_dir / "trial-0000" / "trial.json").read_text()
    result = fk.tune(config, space, n_trials=3, output_dir=study_dir)
    out = capsys.readouterr().out
    assert "2 of 3 trials finished or running" in out
    assert [t.number for t in result.study.trials] == [0, 1, 2]  # --trials counts finished trials
    assert (study_dir / "trial-0000" / "trial.json").read_text() == before  # finished trials kept
    record = json.loads((study_dir / "trial-0002" / "trial.json").read_text())
    assert record["state"] == "complete" and record["value"] == result.study.trials[2].value
    for name in ("config.toml", "metrics.csv", "last.ckpt"):
        assert (study_dir / "trial-0002" / name).is_file()
    with (study_dir / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["trial"]) for r in rows] == [r.trial for r in result.leaderboard]
    values = [float(r["val_accuracy"]) for r in rows]
    assert values == sorted(values, reverse=True) and rows[0]["rank"] == "1"
    best = fk.load_config(study_dir / "best.toml")  # ready for finetune-kit train --config
    assert best.optim.lr == result.best_params["optim.lr"]
    assert best.train.output_dir == str(study_dir / f"final-trial-{result.best_trial.number:04d}")
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (study_dir / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pruned_trials_stop_early_and_say_so(tmp_path, no_plots):
    config, space = load_tune_config(_write(tmp_path, study_text(epochs=3)))
    optuna = require_optuna()

    class PruneAfterTheFirstTrial(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number > 0

    result = fk.tune(
        config, space, n_trials=2, pruner=PruneAfterTheFirstTrial(), output_dir=tmp_path / "s", verbose=False
    )
    states = [t.state.name for t in result.study.trials]
    assert states == ["COMPLETE", "PRUNED"]
    record = json.loads((tmp_path / "s" / "trial-0001" / "trial.json").read_text())
    assert record["state"] == "pruned" and record["epochs"] == 1
    assert "pruned after epoch 1" in record["reason"]
    with (tmp_path / "s" / "trial-0001" / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1  # the run stopped cleanly after epoch 1
    assert (tmp_path / "s" / "trial-0001" / "last.ckpt").is_file()
    assert [row.state for row in result.leaderboard] == ["complete", "pruned"]


def test_a_diverging_trial_fails_and_the_study_goes_on(tmp_path, no_plots):
    text = study_text(epochs=1, space='[tune]\n"optim.lr" = [1e30]\n')
    config, space = load_tune_config(_write(tmp_path, text))
    result = fk.tune(config, space, n_trials=2, output_dir=tmp_path / "s", verbose=False)
    assert [t.state.name for t in result.study.trials] == ["FAIL", "FAIL"]  # both ran: failed ones count
    assert [row.state for row in result.leaderboard] == ["failed", "failed"]
    assert "not finite" in result.leaderboard[0].note
    record = json.loads((tmp_path / "s" / "trial-0000" / "trial.json").read_text())
    assert record["state"] == "failed" and "not finite" in record["error"]
    assert result.best_trial is None and not (tmp_path / "s" / "best.toml").exists()


def test_final_retrains_the_best_config_and_tests_it(small_study, tmp_path, capsys, no_plots):
    config, space = small_study
    result = fk.tune(config, space, n_trials=2, output_dir=tmp_path / "s", final=True, verbose=False)
    final = tmp_path / "s" / f"final-trial-{result.best_trial.number:04d}"
    report = json.loads((final / "report.json").read_text())
    assert result.final_report.accuracy == report["accuracy"]
    capsys.readouterr()
    again = fk.tune(config, space, n_trials=2, output_dir=tmp_path / "s", final=True, verbose=False)
    assert "Final run already done" in capsys.readouterr().out
    assert again.final_report["accuracy"] == report["accuracy"]


def test_bad_calls_are_refused_before_anything_is_written(small_study, tmp_path):
    config, space = small_study
    with pytest.raises(ConfigError, match="Give n_trials"):
        fk.tune(config, space, n_trials=None, output_dir=tmp_path / "s")
    with pytest.raises(ConfigError, match="given twice"):
        fk.tune(tmp_path / "study.toml", space, output_dir=tmp_path / "s")
    with pytest.raises(ConfigError, match="Did you mean 'median'"):
        fk.tune(config, space, pruner="medain", output_dir=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_counted_includes_running_trials_but_not_interrupted_ones(small_study, tmp_path, no_plots):
    config, space = small_study
    result = fk.tune(config, space, n_trials=1, output_dir=tmp_path / "s", verbose=False)
    study = result.study
    assert counted(study) == 1
    running = study.ask()
    assert counted(study) == 2
    study.tell(running, state=require_optuna().trial.TrialState.FAIL)
    study.enqueue_trial({}, user_attrs={"retry_of": running.number})
    assert counted(study) == 1


def _write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_sigterm_between_trainer_runs_stops_the_study_and_requeues(
    small_study, tmp_path, monkeypatch, no_plots
):
    """Outside a Trainer run (here: while trial 1 builds its data) SIGTERM works as Ctrl-C."""
    from finetune_kit.tuning import trial as trial_module

    config, space = small_study
    real = trial_module.build_trainer

    def build_trainer(run_config, **kwargs):
        if run_config.train.output_dir.endswith("trial-0001"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises KeyboardInterrupt before this ends
        return real(run_config, **kwargs)

    monkeypatch.setattr(trial_module, "build_trainer", build_trainer)
    before = signal.getsignal(signal.SIGTERM)
    result = fk.tune(config, space, n_trials=3, output_dir=tmp_path / "s", verbose=False)
    assert result.interrupted and signal.getsignal(signal.SIGTERM) is before
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert result.study.trials[2].user_attrs == {"retry_of": 1}
    assert [r.state for r in result.leaderboard] == ["complete", "interrupted", "queued"]


def test_the_tuning_example_runs_on_real_data(fashion_mnist_dir, tmp_path, monkeypatch, no_plots):
    """examples/tune_transfer.py --smoke: pretrain, study, retrain, on tiny real subsets."""
    import importlib.util
    from pathlib import Path

    examples = Path(__file__).parents[2] / "examples"
    monkeypatch.syspath_prepend(str(examples))  # it imports transfer_experiment, as when run
    spec = importlib.util.spec_from_file_location("tune_transfer", examples / "tune_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--smoke", "--pruners", "median", "--root", str(fashion_mnist_dir), "--out", str(tmp_path)]
    report = module.main(argv)
    assert [(s["pruner"], s["trials"]) for s in report["studies"]] == [("median", 2)]
    names = [r["run"].split(" (")[0] for r in report["results"]]
    assert names == ["default recipe", "hand-picked", "tuned, pruner median"]
    assert all(0.0 <= a <= 1.0 for r in report["results"] for a in r["accuracies"])
    assert json.loads((tmp_path / "results.json").read_text())["table"] == report["table"]
