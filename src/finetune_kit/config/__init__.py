"""Run configuration: small dataclasses, read from TOML, overridden with ``key=value``.

A run is described by six sections (:mod:`~finetune_kit.config.sections`), gathered in a
:class:`RunConfig`; :func:`load_config` / :func:`save_config` read and write TOML files, and
:func:`apply_overrides` applies the CLI's ``--set key=value``.

Example:
    >>> cfg = RunConfig.from_dict({"optim": {"lr": 0.1}, "train": {"epochs": 2}})
    >>> (cfg.optim.lr, cfg.loader.batch_size, cfg.train.epochs)
    (0.1, 128, 2)
"""

from __future__ import annotations

from finetune_kit.config.files import (
    builtin_config,
    list_configs,
    load_config,
    read_config_file,
    save_config,
)
from finetune_kit.config.overrides import TRAINER_SECTIONS, apply_overrides, route_options
from finetune_kit.config.run_config import SECTIONS, RunConfig, build_section
from finetune_kit.config.sections import (
    PRECISIONS,
    DataConfig,
    FinetuneConfig,
    LoaderConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = [
    "PRECISIONS",
    "SECTIONS",
    "TRAINER_SECTIONS",
    "DataConfig",
    "FinetuneConfig",
    "LoaderConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "build_section",
    "builtin_config",
    "list_configs",
    "load_config",
    "read_config_file",
    "route_options",
    "save_config",
]
