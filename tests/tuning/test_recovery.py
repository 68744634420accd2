"""Killing a study (SIGINT, SIGKILL) and running the same command again continues it.

The study runs as ``finetune-kit tune`` in its own process (for SIGINT, ``python -m finetune_kit
tune``; for SIGKILL, the CLI entry point in a forked process) and is killed while its second
trial trains; the same command is then run again (through the CLI entry point in this process)
and must keep the finished trial, mark the killed one interrupted and run its values again,
and stop when ``--trials`` trials are finished.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from finetune_kit.cli import main
from finetune_kit.tuning import require_optuna
from finetune_kit.tuning.recovery import is_dead, requeue, worker_id

from .conftest import fork_tune, start_tune, study_text, trial_state, wait_for

TRIALS = 2


def load(study_dir):
    optuna = require_optuna()
    return optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_killed_study_continues_where_it_stopped(tmp_path, capsys, sig, no_plots):
    config = tmp_path / "study.toml"
    config.write_text(study_text(epochs=12, train_size=480))  # a few seconds a trial
    study_dir = tmp_path / "study"
    argv = ["--config", str(config), "--trials", str(TRIALS), "--output-dir", str(study_dir)]
    log = tmp_path / "first.log"
    if sig == signal.SIGINT:  # the command exactly as a user starts it
        worker = start_tune(argv, log)
        epoch_done = study_dir / "trial-0001" / "metrics.csv"  # written after its first epoch
        wait_for(epoch_done.is_file, "trial 1 to train an epoch", worker, log)
        worker.send_signal(sig)
        status = worker.wait(timeout=120)
    else:  # the same command in a process forked from one that imported finetune_kit already
        worker = fork_tune(argv, log)
        wait_for(lambda: trial_state(study_dir, 1) == "running", "trial 1 to start training", worker, log)
        os.kill(worker.pid, sig)
        worker.join(timeout=120)
        status = worker.exitcode
    output = log.read_text()
    first = load(study_dir).trials
    assert first[0].state.name == "COMPLETE"
    if sig == signal.SIGINT:
        assert status == 130, output
        assert "Stopped by SIGINT: checkpoint saved" in output and "run the same command again" in output
        assert first[1].state.name == "FAIL" and trial_state(study_dir, 1) == "interrupted"
        assert (study_dir / "trial-0001" / "last.ckpt").is_file()  # stopped cleanly
    else:
        assert status == -signal.SIGKILL
        assert first[1].state.name == "RUNNING"  # nobody could mark it

    assert main(["tune", *argv]) == 0  # the same command again
    out = capsys.readouterr().out
    trials = load(study_dir).trials
    assert [t.state.name for t in trials] == ["FAIL" if t.number == 1 else "COMPLETE" for t in trials]
    assert len(trials) == TRIALS + 1  # the finished trial kept, the interrupted one run again
    assert trials[0].params == first[0].params and trials[0].value == first[0].value
    assert trials[2].params == trials[1].params and trials[2].user_attrs["retry_of"] == 1
    record = json.loads((study_dir / "trial-0001" / "trial.json").read_text())
    assert record["state"] == "interrupted" and record["params"] == trials[1].params
    assert trial_state(study_dir, 2) == "complete"
    assert "rerun as trial 2" in out and "rerun of trial 1" in out
    if sig == signal.SIGKILL:
        assert "Trial 1 was interrupted; its values are queued to run again." in out


def test_is_dead_knows_this_machine_only(tmp_path):
    me = worker_id()
    assert not is_dead(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert is_dead(dict(me, pid=child.pid, start=None))  # exited and reaped
    assert is_dead(dict(me, start="0"))  # this pid, but another process (reused pid)
    assert not is_dead(dict(me, host=socket.gethostname() + ".elsewhere", pid=child.pid))
    assert not is_dead(None) and not is_dead({"host": me["host"]})
    assert os.getpid() == me["pid"]


def test_requeue_queues_a_trial_once(tmp_path):
    optuna = require_optuna()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    frozen = study.trials[0]
    requeue(study, frozen)
    requeue(study, frozen)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == frozen.params
    assert waiting[0].user_attrs == {"retry_of": 0}
