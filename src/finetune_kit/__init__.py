"""finetune_kit: train and fine-tune image classifiers in PyTorch."""

from __future__ import annotations

from finetune_kit._version import __version__

__all__ = ["__version__"]
