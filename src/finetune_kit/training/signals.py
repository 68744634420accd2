"""Ctrl-C and SIGTERM during training: finish the step, save, tell the user how to resume.

Example:
    >>> class Target:
    ...     stop_signal = None
    >>> with StopOnSignal(Target()) as guard:
    ...     pass
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Protocol

import torch

from finetune_kit.runtime.distributed import all_reduce_sum

__all__ = ["StopOnSignal", "agree_on_stop"]


class _Stoppable(Protocol):
    stop_signal: str | None


class StopOnSignal:
    """While active, SIGINT/SIGTERM set ``target.stop_signal`` instead of killing the process.

    The training loop checks the flag at the next optimizer-step boundary, saves a checkpoint
    and returns. A second signal raises :class:`KeyboardInterrupt` at once. Handlers are
    installed only in the main thread (Python allows no others) and restored on exit.
    """

    def __init__(self, target: _Stoppable) -> None:
        self.target = target
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.target.stop_signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.target.stop_signal = signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def agree_on_stop(stop_signal: str | None, device: torch.device) -> str | None:
    """Under DDP: the stop signal every rank acts on (any rank that got one stops them all).

    Args:
        stop_signal: the signal this rank received, or None.
        device: where the collective runs.

    Returns:
        This rank's signal, ``"SIGTERM"`` when only another rank got one, or None.
    """
    flag = torch.tensor([0.0 if stop_signal is None else 1.0], device=device)
    if all_reduce_sum(flag).item() > 0:
        return stop_signal or "SIGTERM"
    return None
