"""Fixtures of the reliability tests: the hostile corpus's world of good files, built once."""

from __future__ import annotations

import pytest

from tests.reliability.hostile import Ctx, World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("hostile-world"))


@pytest.fixture
def ctx(world, tmp_path) -> Ctx:
    return Ctx(world, tmp_path)
