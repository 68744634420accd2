"""The optional ``tune`` extra: Optuna is imported only when a study runs.

``import finetune_kit`` and ``finetune-kit --help`` never import Optuna; :func:`require_optuna`
does, and turns a missing installation into one clear error.

Example:
    >>> require_optuna().__name__
    'optuna'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from finetune_kit.errors import ConfigError

__all__ = ["INSTALL_HINT", "require_optuna"]

INSTALL_HINT = 'pip install "finetune-kit[tune]"'


def require_optuna() -> ModuleType:
    """Import and return :mod:`optuna`.

    Returns:
        The optuna module.

    Raises:
        ConfigError: Optuna (or SQLAlchemy, which its database storage needs) is not
            installed; the message says how to install the ``tune`` extra.

    Example:
        >>> hasattr(require_optuna(), "create_study")
        True
    """
    for name in ("optuna", "sqlalchemy"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(
                f"Hyper-parameter search needs the '{name}' package, which is not installed: "
                f"run {INSTALL_HINT}."
            ) from None
    return importlib.import_module("optuna")
