"""Callbacks: code that observes the training loop at named events, the standard ones, loggers.

The Trainer calls ``on_<event>(trainer)`` on each callback at the events in :data:`EVENTS`.

Example:
    >>> from finetune_kit.callbacks import Callback
    >>> class PrintEpoch(Callback):
    ...     def on_epoch_end(self, trainer):
    ...         print("epoch", trainer.state.epoch)
    >>> "epoch_end" in EVENTS
    True
"""

from __future__ import annotations

from finetune_kit.callbacks.base import EVENTS, HOOKS, Callback, CallbackList
from finetune_kit.callbacks.builtin import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    Timer,
)
from finetune_kit.callbacks.loggers import (
    CSVLogger,
    JSONLogger,
    TensorBoardLogger,
    TextLogger,
    create_loggers,
)
from finetune_kit.callbacks.plots import PlotCallback, plots_available
from finetune_kit.callbacks.progress import ProgressBar, bars_wanted

__all__ = [
    "EVENTS",
    "HOOKS",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "JSONLogger",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "NaNGuard",
    "PlotCallback",
    "ProgressBar",
    "TensorBoardLogger",
    "TextLogger",
    "Timer",
    "bars_wanted",
    "create_loggers",
    "plots_available",
]
