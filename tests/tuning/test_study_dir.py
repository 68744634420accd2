"""The study directory holds one study; nothing a user put there is touched."""

from __future__ import annotations

import json

import pytest

from finetune_kit.errors import OutputDirError
from finetune_kit.tuning.study_dir import claim


def test_a_new_directory_is_claimed_and_reclaimed_by_the_same_study(tmp_path):
    folder = tmp_path / "study"
    claim(folder, "demo", "postgresql+psycopg://me:secret@db/studies")
    record = json.loads((folder / "study.json").read_text())
    assert record == {"study_name": "demo", "storage": "postgresql+psycopg://me:***@db/studies"}
    claim(folder, "demo", "postgresql+psycopg://me:secret@db/studies")  # the same study: fine


def test_the_default_storage_moves_with_its_directory(tmp_path):
    claim(tmp_path / "study", "demo", None)
    assert json.loads((tmp_path / "study" / "study.json").read_text())["storage"] == "study.db"
    (tmp_path / "study").rename(tmp_path / "moved")
    claim(tmp_path / "moved", "demo", None)


def test_another_study_or_other_files_are_refused(tmp_path):
    folder = tmp_path / "study"
    claim(folder, "demo", "sqlite:///a.db")
    with pytest.raises(OutputDirError, match="holds the study 'demo'"):
        claim(folder, "demo", "sqlite:///b.db")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputDirError, match=r"not empty and holds no study \(notes.txt"):
        claim(mine, "demo", "sqlite:///a.db")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputDirError, match="is a file"):
        claim(tmp_path / "file", "demo", "sqlite:///a.db")


def test_a_worker_writing_the_owner_file_does_not_make_the_directory_foreign(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / ".study.json.x1y2.tmp").write_text("{}")  # another worker, mid-write
    claim(folder, "demo", None)
    assert json.loads((folder / "study.json").read_text())["study_name"] == "demo"


def test_of_two_studies_claiming_at_once_the_second_is_refused(tmp_path, monkeypatch):
    import finetune_kit.tuning.study_dir as study_dir

    folder = tmp_path / "study"
    checks = []
    real_check = study_dir.check_claim

    def racing_check(path, name, storage):
        checks.append(name)
        if len(checks) == 1:  # the other study creates its file right after this check
            real_check(path, name, storage)
            folder.mkdir()
            (folder / "study.json").write_text(json.dumps({"study_name": "other", "storage": "study.db"}))
            return None
        return real_check(path, name, storage)

    monkeypatch.setattr(study_dir, "check_claim", racing_check)
    with pytest.raises(OutputDirError, match="holds the study 'other'"):
        study_dir.claim(folder, "demo", None)
    assert json.loads((folder / "study.json").read_text())["study_name"] == "other"
