"""finetune_kit: train and fine-tune image classifiers in PyTorch.

The public API is what ``__all__`` lists; everything else may change without notice.

Example:
    >>> import finetune_kit as fk
    >>> "fashion_mnist" in fk.list_datasets() and "convnet" in fk.list_models()
    True
"""

from __future__ import annotations

from finetune_kit._version import __version__
from finetune_kit.callbacks import (
    EVENTS,
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    Timer,
)
from finetune_kit.config import RunConfig, load_config, save_config
from finetune_kit.data import (
    DataBundle,
    create_datasets,
    list_datasets,
    make_loaders,
    register_dataset,
)
from finetune_kit.ema import ModelEma
from finetune_kit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    FinetuneKitError,
    OutputDirError,
    ShapeError,
    TrainingError,
    UnknownNameError,
)
from finetune_kit.evaluate import evaluate_checkpoint
from finetune_kit.exporting import LoadedModel, export, load_model
from finetune_kit.finetuner import FineTuner, list_recipes
from finetune_kit.freezing import apply_strategy, list_strategies, register_strategy
from finetune_kit.loggers import CSVLogger, JSONLogger, TensorBoardLogger
from finetune_kit.losses import create_loss, list_losses, register_loss
from finetune_kit.lr_finder import lr_find
from finetune_kit.metrics import create_metric, list_metrics
from finetune_kit.models import create_model, list_models, load_weights, model_info, register_model
from finetune_kit.optim import create_optimizer, list_optimizers, register_optimizer
from finetune_kit.overrides import apply_overrides
from finetune_kit.peft import merge_lora, unmerge_lora
from finetune_kit.plot_callback import PlotCallback
from finetune_kit.prediction import Predictions, predict
from finetune_kit.progress import ProgressBar
from finetune_kit.registry import Registry
from finetune_kit.report import ClassificationReport, classification_report
from finetune_kit.runner import build_trainer
from finetune_kit.schedulers import create_scheduler, list_schedulers
from finetune_kit.stages import model_stages
from finetune_kit.state import History
from finetune_kit.trainer import Trainer

__all__ = [
    "EVENTS",
    "CSVLogger",
    "Callback",
    "CheckpointError",
    "ClassificationReport",
    "ConfigError",
    "DataBundle",
    "DataError",
    "DeviceError",
    "EarlyStopping",
    "FineTuner",
    "FinetuneKitError",
    "History",
    "JSONLogger",
    "LearningRateMonitor",
    "LoadedModel",
    "ModelCheckpoint",
    "ModelEma",
    "NaNGuard",
    "OutputDirError",
    "PlotCallback",
    "Predictions",
    "ProgressBar",
    "Registry",
    "RunConfig",
    "ShapeError",
    "TensorBoardLogger",
    "Timer",
    "Trainer",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "apply_overrides",
    "apply_strategy",
    "build_trainer",
    "classification_report",
    "create_datasets",
    "create_loss",
    "create_metric",
    "create_model",
    "create_optimizer",
    "create_scheduler",
    "evaluate_checkpoint",
    "export",
    "list_datasets",
    "list_losses",
    "list_metrics",
    "list_models",
    "list_optimizers",
    "list_recipes",
    "list_schedulers",
    "list_strategies",
    "load_config",
    "load_model",
    "load_weights",
    "lr_find",
    "make_loaders",
    "merge_lora",
    "model_info",
    "model_stages",
    "predict",
    "register_dataset",
    "register_loss",
    "register_model",
    "register_optimizer",
    "register_strategy",
    "save_config",
    "unmerge_lora",
]
