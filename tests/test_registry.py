"""Registry: register, get, list, duplicates and unknown names."""

from __future__ import annotations

import pytest

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.registry import Registry, did_you_mean


@pytest.fixture
def reg() -> Registry:
    r: Registry = Registry("widget")
    r.register("alpha", 1)
    r.register("alpine", 2)
    r.register("beta", 3)
    return r


def test_register_and_get(reg):
    assert reg.get("alpha") == 1
    assert reg.get("beta") == 3
    assert len(reg) == 3 and "alpine" in reg and "gamma" not in reg


def test_register_as_decorator_returns_the_object():
    r: Registry = Registry("thing")

    @r.register("made")
    def make():
        return 42

    assert r.get("made") is make and make() == 42


def test_list_with_glob(reg):
    assert reg.list() == ["alpha", "alpine", "beta"]
    assert reg.list("alp*") == ["alpha", "alpine"]
    assert reg.list("*ta") == ["beta"]
    assert reg.list("zzz*") == []


def test_duplicate_registration_raises_and_override_replaces(reg):
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("alpha", 10)
    assert reg.get("alpha") == 1
    reg.register("alpha", 10, override=True)
    assert reg.get("alpha") == 10


@pytest.mark.parametrize("bad", ["Alpha", "1abc", "with-dash", "", "sp ace"])
def test_names_must_be_snake_case(bad):
    with pytest.raises(ConfigError, match="snake_case"):
        Registry("x").register(bad, 1)


def test_unknown_name_lists_choices_and_suggests(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    message = str(info.value)
    assert "Unknown widget 'alpah'" in message
    assert "Did you mean 'alpha'?" in message
    assert "alpha, alpine, beta" in message


def test_unknown_name_far_from_any_choice_has_no_suggestion(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("qqqqqq")
    assert "Did you mean" not in str(info.value)


def test_unregister(reg):
    reg.unregister("beta")
    assert "beta" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("beta")


def test_did_you_mean():
    assert did_you_mean("resnt18", ["resnet18", "convnet"]) == " Did you mean 'resnet18'?"
    assert did_you_mean("xyz", ["resnet18"]) == ""
