"""Argument checks shared by the model builders: each returns the value or raises ConfigError.

Example:
    >>> check_num_classes(10), check_in_channels(1), check_dropout(0.5)
    (10, 1, 0.5)
"""

from __future__ import annotations

from finetune_kit.errors import ConfigError

__all__ = ["check_dropout", "check_in_channels", "check_num_classes"]


def check_num_classes(num_classes: object) -> int:
    """Return ``num_classes`` if it is an int >= 1, else raise ConfigError."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}.")
    return num_classes


def check_dropout(dropout: object) -> float:
    """Return ``dropout`` as a float if it lies in [0, 1), else raise ConfigError."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}.")
    return float(dropout)


def check_in_channels(in_channels: object) -> int:
    """Return ``in_channels`` if it is an int >= 1, else raise ConfigError."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be an integer >= 1, got {in_channels!r}.")
    return in_channels
