"""Training: the Trainer and its loop, FineTuner recipes, evaluation, resume, build-from-config.

Example:
    >>> from finetune_kit.training import FineTuner, Trainer, build_trainer
    >>> Trainer.fit.__doc__.splitlines()[0]
    'Train for ``epochs`` (or ``max_steps``), validating after every epoch.'
"""

from __future__ import annotations

from finetune_kit.training.evaluator import Evaluator
from finetune_kit.training.finetuner import RECIPES, FineTuner, RecipeStage, list_recipes
from finetune_kit.training.from_config import (
    build_datasets,
    build_model,
    build_trainer,
    config_from_checkpoint,
    evaluate_checkpoint,
)
from finetune_kit.training.state import History, TrainState
from finetune_kit.training.trainer import Trainer

__all__ = [
    "RECIPES",
    "Evaluator",
    "FineTuner",
    "History",
    "RecipeStage",
    "TrainState",
    "Trainer",
    "build_datasets",
    "build_model",
    "build_trainer",
    "config_from_checkpoint",
    "evaluate_checkpoint",
    "list_recipes",
]
