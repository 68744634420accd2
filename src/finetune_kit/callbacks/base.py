"""Callbacks: code that observes the loop at named events, and the standard ones.

The Trainer calls ``on_<event>(trainer)`` on each callback at the events in :data:`EVENTS`, in
list order. A callback reads what it needs from ``trainer.state`` (epoch, step, metrics) and may
ask the loop to stop with ``trainer.request_stop(reason)``. Defining a hook whose name is not an
event is an error at class-definition time, so a misspelt hook never fails silently.

Example:
    >>> class PrintEpoch(Callback):
    ...     def on_train_epoch_end(self, trainer):
    ...         print("epoch", trainer.state.epoch)
    >>> class Typo(Callback):  # doctest: +IGNORE_EXCEPTION_DETAIL
    ...     def on_epoch_ned(self, trainer): ...
    Traceback (most recent call last):
    finetune_kit.errors.ConfigError: Typo.on_epoch_ned is not a callback hook...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

if TYPE_CHECKING:
    from finetune_kit.training.trainer import Trainer

__all__ = ["EVENTS", "HOOKS", "Callback", "CallbackList"]

EVENTS: tuple[str, ...] = (
    "fit_start",  # run directory, loaders, optimizer ready; before the first epoch
    "train_epoch_start",
    "train_batch_end",  # after each batch (and optimizer step, when one was taken)
    "train_epoch_end",  # after the training batches of an epoch, before validation
    "validation_end",  # validation metrics of the epoch are in trainer.state.metrics
    "epoch_end",  # the epoch's row is in trainer.history; checkpoints are written here
    "fit_end",  # after the last epoch, or after a requested stop
    "test_end",  # trainer.state.test_report holds the test report
    "exception",  # the loop is being left by an exception (trainer.state.exception)
)
HOOKS = tuple(f"on_{event}" for event in EVENTS)


class Callback:
    """Base class: override any ``on_<event>(self, trainer)`` of :data:`EVENTS`.

    Example:
        >>> class CountBatches(Callback):
        ...     def __init__(self):
        ...         self.batches = 0
        ...     def on_train_batch_end(self, trainer):
        ...         self.batches += 1
        >>> CountBatches().batches
        0
    """

    #: Under DDP, run this callback on rank 0 only (loggers, progress bars, plots).
    main_process_only: bool = False

    @property
    def state_key(self) -> str:
        """The name its state is saved under in checkpoints (the class name by default)."""
        return type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in vars(cls):
            if name.startswith("on_") and name not in HOOKS:
                raise ConfigError(
                    f"{cls.__name__}.{name} is not a callback hook.{did_you_mean(name, HOOKS)} "
                    f"Hooks are: {', '.join(HOOKS)}."
                )

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints (for exact resume)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class CallbackList:
    """Dispatches events to callbacks in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(
                    f"callbacks must be Callback instances, got {type(cb).__name__}. "
                    "Subclass finetune_kit.Callback."
                )
        self.callbacks = list(callbacks)

    def fire(self, event: str, trainer: Trainer) -> None:
        """Call ``on_<event>`` on every callback that defines it."""
        hook = f"on_{event}"
        if hook not in HOOKS:  # a bug in the library, not user input
            raise ValueError(f"unknown event {event!r}")
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if method is not None:
                method(trainer)

    def _keys(self) -> list[str]:
        """Each callback's ``state_key``; repeats of a key get ``#2``, ``#3`` ... in list order."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            seen[cb.state_key] = seen.get(cb.state_key, 0) + 1
            count = seen[cb.state_key]
            keys.append(cb.state_key if count == 1 else f"{cb.state_key}#{count}")
        return keys

    def state_dict(self) -> dict[str, Any]:
        """Each callback's state under its name (adding or removing others changes nothing)."""
        return {key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks, strict=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore callback states saved by :meth:`state_dict`, matched by name."""
        for key, cb in zip(self._keys(), self.callbacks, strict=True):
            if key in state:
                cb.load_state_dict(state[key])
