"""Storages: the SQLite default, a real PostgreSQL server, journal files; two workers share a study.

The two-worker tests run ``finetune-kit tune`` in a forked process and, once it trains its
first trial, a second worker in this process on the same storage and study name. Every trial
must run exactly once, in one of the two workers, and both must have worked.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

import finetune_kit as fk
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import load_tune_config, require_optuna
from finetune_kit.tuning.storage import create_pruner, open_storage, public_url, storage_url

from .conftest import fork_tune, study_text, trial_state, wait_for

TRIALS = 5


def _initdb() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None
    )
    return Path(found).resolve() if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on localhost (Debian's postgresql package), its URL."""
    initdb = _initdb()
    if initdb is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pg_ctl = initdb.parent / "pg_ctl"
    folder = Path(tempfile.mkdtemp(prefix="finetune-kit-pg-"))
    as_server = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root, and there is no 'postgres' user to run the server as")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_server = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"

    def pg(*args: str) -> None:
        subprocess.run([*as_server, *args], check=True, capture_output=True, timeout=120)

    try:
        pg(str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        pg(str(pg_ctl), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    pg(str(pg_ctl), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(folder, ignore_errors=True)


def _two_workers(tmp_path: Path, storage: str | None, same_dir: bool) -> list:
    """A forked worker and this process share a study; returns its trials."""
    config = tmp_path / "study.toml"
    config.write_text(study_text(epochs=5, train_size=480))
    dirs = [tmp_path / "study"] * 2 if same_dir else [tmp_path / "a", tmp_path / "b"]
    url = storage or f"sqlite:///{dirs[0] / 'study.db'}"
    argv = ["--config", str(config), "--trials", str(TRIALS), "--output-dir", str(dirs[0])]
    argv += ["--study-name", "shared"] + (["--storage", storage] if storage else [])
    log = tmp_path / "worker.log"
    worker = fork_tune(argv, log)
    optuna = require_optuna()

    def worker_trains() -> bool:  # read its files: opening the storage now could race its set-up
        return trial_state(dirs[0], 0) == "running"

    wait_for(worker_trains, "the first worker to start a trial", worker, log)
    base, space = load_tune_config(config)
    fk.tune(
        base, space, n_trials=TRIALS, storage=storage, study_name="shared", output_dir=dirs[1], verbose=False
    )
    worker.join(timeout=180)
    assert worker.exitcode == 0, log.read_text()
    trials = optuna.load_study(study_name="shared", storage=url).trials
    summary = f"{[(t.number, t.state.name, t.user_attrs) for t in trials]}\n{log.read_text()[-2000:]}"
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), summary
    assert TRIALS <= len(trials) <= TRIALS + 1, summary  # both may start a last trial at once
    assert len({str(t.params) for t in trials}) == len(trials), summary  # no values run twice
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert pids == {worker.pid, os.getpid()}, summary  # both workers ran trials
    found = sorted(int(p.name[6:]) for d in set(dirs) for p in d.glob("trial-*"))
    assert found == [t.number for t in trials], summary  # one run directory per trial
    return trials


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(tmp_path, no_plots):
    _two_workers(tmp_path, storage=None, same_dir=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path, postgres_url, no_plots):
    _two_workers(tmp_path, storage=postgres_url, same_dir=False)


def test_workers_that_start_together_all_open_the_study(study_file, tmp_path):
    """Four workers start at once on a new SQLite file: one creates the tables, all open it."""
    argv = ["--config", str(study_file), "--trials", "0", "--output-dir", str(tmp_path / "study")]
    workers = [fork_tune(argv, tmp_path / f"worker{i}.log") for i in range(4)]
    for i, worker in enumerate(workers):
        worker.join(timeout=180)
        assert worker.exitcode == 0, (tmp_path / f"worker{i}.log").read_text()[-2000:]


def test_a_journal_file_holds_a_study(small_study, tmp_path, no_plots):
    config, space = small_study
    journal = tmp_path / "study.log"
    result = fk.tune(
        config, space, n_trials=1, storage=str(journal), output_dir=tmp_path / "s", verbose=False
    )
    assert result.storage == str(journal) and journal.stat().st_size > 0
    again = fk.tune(config, space, n_trials=2, storage=str(journal), output_dir=tmp_path / "s", verbose=False)
    assert len(again.study.trials) == 2


def test_default_url_and_hidden_passwords(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    assert storage_url("postgresql+psycopg://u:p@h/db", tmp_path) == "postgresql+psycopg://u:p@h/db"
    assert public_url("postgresql+psycopg://me:secret@db/studies") == "postgresql+psycopg://me:***@db/studies"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("studies.txt", "neither a database URL nor a journal file"),
        ("/no/such/folder/study.log", "does not exist"),
        ("nosuchdb://x", "Cannot open storage nosuchdb://x"),
        ("postgresql+psycopg://me:secret@127.0.0.1:9/db", "Check the URL, that the database server runs"),
    ],
)
def test_bad_storages_are_one_clear_error(url, message):
    with pytest.raises(ConfigError) as caught:
        open_storage(url, on_stale=lambda study, trial: None)
    assert message in str(caught.value) and "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_pruners_by_name():
    optuna = require_optuna()
    assert isinstance(create_pruner("successive_halving", 5), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(create_pruner("hyperband", 5), optuna.pruners.HyperbandPruner)
    assert isinstance(create_pruner("none", 5), optuna.pruners.NopPruner)
    with pytest.raises(ConfigError, match="Did you mean 'hyperband'"):
        create_pruner("hyperbnad", 5)
