"""Where and how models run: device, precision, seeding, the evaluation forward pass, DDP.

These are the few decisions every layer above needs (training, evaluation, prediction,
analysis) and that know nothing of the training loop.

Example:
    >>> from finetune_kit.runtime import resolve_device
    >>> resolve_device("cpu").type
    'cpu'
"""

from __future__ import annotations

from finetune_kit.runtime.device import resolve_device
from finetune_kit.runtime.forward import TTA_MODES, eval_forward, eval_mode, predict_logits
from finetune_kit.runtime.precision import PrecisionMode
from finetune_kit.runtime.reproducibility import configure_determinism, seed_everything

__all__ = [
    "TTA_MODES",
    "PrecisionMode",
    "configure_determinism",
    "eval_forward",
    "eval_mode",
    "predict_logits",
    "resolve_device",
    "seed_everything",
]
