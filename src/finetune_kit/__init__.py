"""finetune_kit: train and fine-tune image classifiers in PyTorch.

The public API is what ``__all__`` lists; everything else may change without notice. The
names are loaded on first use, so ``import finetune_kit`` (and the ``finetune-kit`` command's
``--help``) does not pay for importing PyTorch until something needs it.

Example:
    >>> import finetune_kit as fk
    >>> "fashion_mnist" in fk.list_datasets() and "convnet" in fk.list_models()
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from finetune_kit._version import __version__

if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and IDEs
    from finetune_kit.analysis import (
        TopLosses,
        top_losses,
    )
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
        TextLogger,
        Timer,
    )
    from finetune_kit.config import (
        RunConfig,
        apply_overrides,
        load_config,
        save_config,
    )
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
        ExportError,
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
    from finetune_kit.inference import (
        Explanation,
        LoadedModel,
        OnnxModel,
        Predictions,
        explain,
        export,
        load_model,
        predict,
    )
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
    from finetune_kit.registry import (
        Registry,
    )
    from finetune_kit.training import (
        FineTuner,
        History,
        Trainer,
        build_trainer,
        evaluate_checkpoint,
        list_recipes,
    )
    from finetune_kit.tuning import (
        SearchSpace,
        TuneResult,
        tune,
    )

# public name -> the package that defines it
_EXPORTS = {
    "TopLosses": "finetune_kit.analysis",
    "top_losses": "finetune_kit.analysis",
    "CSVLogger": "finetune_kit.callbacks",
    "Callback": "finetune_kit.callbacks",
    "EVENTS": "finetune_kit.callbacks",
    "EarlyStopping": "finetune_kit.callbacks",
    "JSONLogger": "finetune_kit.callbacks",
    "LearningRateMonitor": "finetune_kit.callbacks",
    "ModelCheckpoint": "finetune_kit.callbacks",
    "NaNGuard": "finetune_kit.callbacks",
    "PlotCallback": "finetune_kit.callbacks",
    "ProgressBar": "finetune_kit.callbacks",
    "TensorBoardLogger": "finetune_kit.callbacks",
    "TextLogger": "finetune_kit.callbacks",
    "Timer": "finetune_kit.callbacks",
    "RunConfig": "finetune_kit.config",
    "apply_overrides": "finetune_kit.config",
    "load_config": "finetune_kit.config",
    "save_config": "finetune_kit.config",
    "DataBundle": "finetune_kit.data",
    "create_datasets": "finetune_kit.data",
    "list_datasets": "finetune_kit.data",
    "make_loaders": "finetune_kit.data",
    "register_dataset": "finetune_kit.data",
    "CheckpointError": "finetune_kit.errors",
    "ConfigError": "finetune_kit.errors",
    "DataError": "finetune_kit.errors",
    "DeviceError": "finetune_kit.errors",
    "ExportError": "finetune_kit.errors",
    "FinetuneKitError": "finetune_kit.errors",
    "OutputDirError": "finetune_kit.errors",
    "ShapeError": "finetune_kit.errors",
    "TrainingError": "finetune_kit.errors",
    "UnknownNameError": "finetune_kit.errors",
    "apply_strategy": "finetune_kit.freezing",
    "create_strategy": "finetune_kit.freezing",
    "list_strategies": "finetune_kit.freezing",
    "merge_lora": "finetune_kit.freezing",
    "register_strategy": "finetune_kit.freezing",
    "unmerge_lora": "finetune_kit.freezing",
    "Explanation": "finetune_kit.inference",
    "LoadedModel": "finetune_kit.inference",
    "OnnxModel": "finetune_kit.inference",
    "Predictions": "finetune_kit.inference",
    "explain": "finetune_kit.inference",
    "export": "finetune_kit.inference",
    "load_model": "finetune_kit.inference",
    "predict": "finetune_kit.inference",
    "ClassificationReport": "finetune_kit.metrics",
    "classification_report": "finetune_kit.metrics",
    "create_metric": "finetune_kit.metrics",
    "list_metrics": "finetune_kit.metrics",
    "register_metric": "finetune_kit.metrics",
    "create_model": "finetune_kit.models",
    "list_models": "finetune_kit.models",
    "load_weights": "finetune_kit.models",
    "model_info": "finetune_kit.models",
    "model_stages": "finetune_kit.models",
    "register_model": "finetune_kit.models",
    "unwrap_model": "finetune_kit.models",
    "ModelEma": "finetune_kit.optim",
    "create_loss": "finetune_kit.optim",
    "create_optimizer": "finetune_kit.optim",
    "create_scheduler": "finetune_kit.optim",
    "list_losses": "finetune_kit.optim",
    "list_optimizers": "finetune_kit.optim",
    "list_schedulers": "finetune_kit.optim",
    "lr_find": "finetune_kit.optim",
    "register_loss": "finetune_kit.optim",
    "register_optimizer": "finetune_kit.optim",
    "register_scheduler": "finetune_kit.optim",
    "Registry": "finetune_kit.registry",
    "FineTuner": "finetune_kit.training",
    "History": "finetune_kit.training",
    "Trainer": "finetune_kit.training",
    "build_trainer": "finetune_kit.training",
    "evaluate_checkpoint": "finetune_kit.training",
    "list_recipes": "finetune_kit.training",
    "SearchSpace": "finetune_kit.tuning",
    "TuneResult": "finetune_kit.tuning",
    "tune": "finetune_kit.tuning",
}


def __getattr__(name: str) -> Any:
    """Import the package that defines a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'finetune_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "Explanation",
    "ExportError",
    "FineTuner",
    "FinetuneKitError",
    "History",
    "JSONLogger",
    "LearningRateMonitor",
    "LoadedModel",
    "ModelCheckpoint",
    "ModelEma",
    "NaNGuard",
    "OnnxModel",
    "OutputDirError",
    "PlotCallback",
    "Predictions",
    "ProgressBar",
    "Registry",
    "RunConfig",
    "SearchSpace",
    "ShapeError",
    "TensorBoardLogger",
    "TextLogger",
    "Timer",
    "TopLosses",
    "Trainer",
    "TrainingError",
    "TuneResult",
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
    "explain",
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
    "tune",
    "unmerge_lora",
    "unwrap_model",
]
