"""The ``finetune-kit`` command line (``python -m finetune_kit`` runs it too)."""

from __future__ import annotations

from finetune_kit.cli.main import main

__all__ = ["main"]
