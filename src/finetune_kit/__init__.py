"""finetune_kit: train and fine-tune image classifiers in PyTorch.

The public API is what ``__all__`` lists; everything else may change without notice.

Example:
    >>> import finetune_kit as fk
    >>> "fashion_mnist" in fk.list_datasets() and "convnet" in fk.list_models()
    True
"""

from __future__ import annotations

from finetune_kit._version import __version__
from finetune_kit.analysis import TopLosses, top_losses
from finetune_kit.callbacks import (
    EVENTS,
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateMonitor,
    ModelCheckpoint,
    NaNGuard,
    PlotCallback,
    ProgressBar,
    TensorBoardLogger,
    Timer,
)
from finetune_kit.config import RunConfig, apply_overrides, load_config, save_config
from finetune_kit.data import (
    DataBundle,
    create_datasets,
    list_datasets,
    make_loaders,
    register_dataset,
)
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
from finetune_kit.freezing import (
    apply_strategy,
    create_strategy,
    list_strategies,
    merge_lora,
    register_strategy,
    unmerge_lora,
)
from finetune_kit.inference import LoadedModel, Predictions, export, load_model, predict
from finetune_kit.metrics import (
    ClassificationReport,
    classification_report,
    create_metric,
    list_metrics,
    register_metric,
)
from finetune_kit.models import (
    create_model,
    list_models,
    load_weights,
    model_info,
    model_stages,
    register_model,
    unwrap_model,
)
from finetune_kit.optim import (
    ModelEma,
    create_loss,
    create_optimizer,
    create_scheduler,
    list_losses,
    list_optimizers,
    list_schedulers,
    lr_find,
    register_loss,
    register_optimizer,
    register_scheduler,
)
from finetune_kit.registry import Registry
from finetune_kit.training import (
    FineTuner,
    History,
    Trainer,
    build_trainer,
    evaluate_checkpoint,
    list_recipes,
)

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
    "TopLosses",
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
    "create_strategy",
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
    "register_metric",
    "register_model",
    "register_optimizer",
    "register_scheduler",
    "register_strategy",
    "save_config",
    "top_losses",
    "unmerge_lora",
    "unwrap_model",
]
