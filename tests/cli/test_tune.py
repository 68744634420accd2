"""``finetune-kit tune``: a small study from the command line, and one-line errors with exit 2."""

from __future__ import annotations

import pytest

from finetune_kit.cli import main
from finetune_kit.cli.parser import build_parser
from tests.tuning.conftest import study_text


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(study_text())
    return path


def test_tune_runs_a_study_and_the_final_run(study_file, tmp_path, capsys):
    study = tmp_path / "study"
    argv = ["tune", "--config", str(study_file), "--trials", "2", "--output-dir", str(study)]
    assert (
        main([*argv, "--final", "--pruner", "none", "--study-name", "cli", "--set", "optim.momentum=0.8"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Study 'cli' in sqlite:///" in out and "Best: trial" in out and "f1-score" in out
    for name in ("study.db", "study.json", "trials.csv", "best.toml", "trial-0000", "trial-0001"):
        assert (study / name).exists(), name
    assert len(list(study.glob("final-trial-*/report.json"))) == 1


@pytest.mark.parametrize(
    ("space", "extra", "message"),
    [
        ('[tune]\n"finetune.strategy" = ["full", "lorra"]\n', [], "Did you mean 'lora'?"),
        ('[tune]\n"optim.lr" = {low = 0.1, hihg = 0.2}\n', [], "Did you mean 'high'?"),
        ('[tune]\n"optim.lr" = [0.1]\n', ["--pruner", "medain"], "Did you mean 'median'?"),
        ('[tune]\n"optim.lr" = [0.1]\n', ["--metric", "val_acc"], "Did you mean 'val_accuracy'?"),
        ('[tune]\n"optim.lr" = [0.1]\n', ["--storage", "study.txt"], "neither a database URL"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, space, extra, message):
    path = tmp_path / "study.toml"
    path.write_text(study_text(space=space))
    assert main(["tune", "--config", str(path), "--output-dir", str(tmp_path / "s"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("finetune-kit: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_a_directory_of_other_files_is_refused(study_file, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["tune", "--config", str(study_file), "--output-dir", str(tmp_path / "mine")]) == 2
    assert "holds no study" in capsys.readouterr().err


def test_help_lists_tune_and_its_flags(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "--help"])
    out = capsys.readouterr().out
    for flag in ("--trials", "--timeout", "--storage", "--study-name", "--output-dir", "--final", "--set"):
        assert flag in out
