"""The callback protocol: hooks checked at class definition, state saved by callback name."""

from __future__ import annotations

import pytest

from finetune_kit.callbacks import Callback, CallbackList, EarlyStopping, Timer
from finetune_kit.errors import ConfigError


class Counter(Callback):
    def __init__(self, start: int = 0) -> None:
        self.count = start

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_a_misspelt_hook_is_refused_when_the_class_is_defined():
    with pytest.raises(ConfigError, match="on_epoch_ned is not a callback hook. Did you mean 'on_epoch_end'"):

        class Typo(Callback):
            def on_epoch_ned(self, trainer): ...


def test_every_callback_says_whether_it_runs_on_rank_zero_only():
    assert Callback.main_process_only is False and Timer().main_process_only is False


def test_state_is_matched_by_name_not_by_position():
    saved = CallbackList([Timer(), Counter(7), EarlyStopping()]).state_dict()
    assert set(saved) == {"Timer", "Counter", "EarlyStopping"}
    restored = Counter()
    CallbackList([restored, EarlyStopping()]).load_state_dict(saved)  # other order, one fewer
    assert restored.count == 7


def test_repeated_callbacks_of_one_class_keep_their_own_state():
    saved = CallbackList([Counter(1), Timer(), Counter(2)]).state_dict()
    assert saved["Counter"] == {"count": 1} and saved["Counter#2"] == {"count": 2}
    first, second = Counter(), Counter()
    CallbackList([first, second]).load_state_dict(saved)
    assert (first.count, second.count) == (1, 2)
