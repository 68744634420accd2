"""Without the tune extra: one clear error naming the pip command, also from the CLI."""

from __future__ import annotations

import sys

import pytest

from finetune_kit.cli import main
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import require_optuna


@pytest.mark.parametrize("missing", ["optuna", "sqlalchemy"])
def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError, as when not installed
    with pytest.raises(ConfigError) as caught:
        require_optuna()
    assert f"'{missing}' package" in str(caught.value)
    assert 'pip install "finetune-kit[tune]"' in str(caught.value)


def test_the_cli_says_so_and_exits_2(monkeypatch, study_file, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "--config", str(study_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("finetune-kit: error: ") and 'pip install "finetune-kit[tune]"' in err
    assert len(err.splitlines()) == 1
