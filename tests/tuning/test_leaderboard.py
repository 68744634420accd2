"""The leaderboard: states, order, notes, trials.csv and the printed table."""

from __future__ import annotations

import csv

from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.leaderboard import leaderboard, table, write_csv


def study_with_every_state():
    optuna = require_optuna()
    states = optuna.trial.TrialState
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    study = optuna.create_study(direction="maximize")

    def add(state, value=None, steps=None, **attrs):
        study.add_trial(
            optuna.trial.create_trial(
                state=state, value=value, params={"optim.lr": 0.01 * (len(study.trials) + 1)},
                distributions={"optim.lr": lr}, intermediate_values=steps or {}, user_attrs=attrs,
            )
        )  # fmt: skip

    add(states.COMPLETE, 0.80, {1: 0.7, 2: 0.8}, epochs=2, seconds=3.0)  # 0
    add(states.PRUNED, None, {1: 0.4}, epochs=1, seconds=1.0)  # 1
    add(states.COMPLETE, 0.90, {1: 0.85, 2: 0.9}, epochs=2, seconds=3.1)  # 2
    add(states.FAIL, None, {1: 0.5})  # 3: interrupted, run again as 5
    add(states.FAIL, None, error="The mean training loss of epoch 1 is not finite.")  # 4
    add(states.COMPLETE, 0.85, {1: 0.8, 2: 0.85}, retry_of=3)  # 5
    return study


def test_rows_are_best_first_with_states_and_notes():
    rows = leaderboard(study_with_every_state())
    assert [(r.trial, r.state) for r in rows] == [
        (2, "complete"), (5, "complete"), (0, "complete"), (1, "pruned"), (3, "interrupted"), (4, "failed"),
    ]  # fmt: skip
    by_trial = {r.trial: r for r in rows}
    assert by_trial[1].value == 0.4 and by_trial[1].epochs == 1  # the last value reported
    assert by_trial[3].note == "rerun as trial 5" and by_trial[5].note == "rerun of trial 3"
    assert "not finite" in by_trial[4].note


def test_a_loss_is_ranked_lowest_first():
    optuna = require_optuna()
    study = optuna.create_study(direction="minimize")
    for value in (0.5, 0.2, 0.9):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    assert [r.value for r in leaderboard(study)] == [0.2, 0.5, 0.9]


def test_csv_and_table(tmp_path):
    rows = leaderboard(study_with_every_state())
    write_csv(rows, tmp_path / "trials.csv", "val_accuracy", ["optim.lr"])
    with (tmp_path / "trials.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == [
        "rank",
        "trial",
        "state",
        "val_accuracy",
        "epochs",
        "seconds",
        "optim.lr",
        "note",
    ]
    assert [w["rank"] for w in written] == ["1", "2", "3", "", "", ""]
    assert float(written[0]["optim.lr"]) == rows[0].params["optim.lr"]  # unrounded
    text = table(rows, "val_accuracy", ["optim.lr"]).splitlines()
    assert text[0].split() == [
        "rank",
        "trial",
        "state",
        "val_accuracy",
        "epochs",
        "seconds",
        "optim.lr",
        "note",
    ]
    assert text[1].split()[:4] == ["1", "2", "complete", "0.9000"]
    assert "rerun as trial 5" in "\n".join(text)
