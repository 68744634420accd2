"""User paths: a NUL byte or a non-path is refused before the operating system sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_kit.errors import ConfigError
from finetune_kit.storage.paths import user_path


def test_paths_pass_and_bad_ones_are_named():
    assert user_path(Path("a/b"), "root") == Path("a/b")
    for value, words in (
        ("a\0b", "root='a\\x00b' contains a NUL byte"),
        (b"a", "root must be a path (a string), got bytes"),
        (3, "got int"),
        ("", "root must be a non-empty path"),
    ):
        with pytest.raises(ConfigError) as info:
            user_path(value, "root")
        assert words in str(info.value)
