"""What a run directory records of the run that made it, whichever door it came through.

A run made with the Python API (``Trainer(model, data, ...)``), a FineTuner, a config file or
CLI flags writes the same thing: a ``config.toml`` whose ``[data]``, ``[model]`` and
``[finetune]`` sections describe the data, model and freezing actually used, so that
``finetune-kit train --config RUN/config.toml``, ``--resume`` and ``evaluate`` rebuild exactly
them. Parts finetune_kit cannot rebuild (a custom ``nn.Module``, in-memory tensors) are named so
that a later rebuild stops with a clear message instead of building something else.

Example:
    >>> from torch import nn
    >>> model_section(nn.Linear(2, 2)).name
    'torch.nn.modules.linear.Linear'
"""

from __future__ import annotations

import dataclasses
import re

from torch import nn

from finetune_kit.config import RunConfig
from finetune_kit.config.sections import DataConfig, ModelConfig
from finetune_kit.data import DataBundle
from finetune_kit.errors import ConfigError
from finetune_kit.freezing import FreezePlan
from finetune_kit.models.info import INFO_ATTR, ModelInfo

__all__ = [
    "custom_model_error",
    "data_section",
    "describe_run",
    "fill_hint",
    "is_class_path",
    "model_section",
]

# Keys of a ModelInfo's build_kwargs that have their own [model] key (or come from the data).
_OWN_KEYS = ("num_classes", "in_channels", "small_input", "dropout", "seed")


def model_section(model: nn.Module) -> ModelConfig:
    """The ``[model]`` section that rebuilds ``model``.

    A model from ``create_model`` is described by its registry name and build options; any
    other ``nn.Module`` by its class path, which ``build_model`` refuses with a clear message.

    Args:
        model: the model.

    Returns:
        The section.
    """
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo):
        cls = type(model)
        return ModelConfig(name=f"{cls.__module__}.{cls.__qualname__}")
    build = info.build_kwargs
    return ModelConfig(
        name=info.name,
        weights=info.weights,
        small_input=bool(build.get("small_input", False)),
        dropout=float(build.get("dropout", 0.0)),
        seed=build.get("seed"),
        options={k: v for k, v in build.items() if k not in _OWN_KEYS},
    )


def data_section(data: DataBundle, seed: int) -> DataConfig:
    """The ``[data]`` section that rebuilds ``data`` (its resolved preset, its split seed).

    Args:
        data: the datasets.
        seed: the run's ``train.seed`` (the split seed is recorded only when it differs).

    Returns:
        The section.
    """
    origin = data.origin or {"dataset": data.name}
    return DataConfig(
        dataset=origin["dataset"],
        root=origin.get("root"),
        val_fraction=data.val_fraction,
        preset=data.preset.name,
        download=bool(origin.get("download", True)),
        channels=origin.get("channels"),
        classes=origin.get("classes"),
        limit=origin.get("limit"),
        seed=None if data.seed == seed else data.seed,
        options=dict(origin.get("options") or {}),  # None: not storable (in-memory tensors)
    )


def describe_run(
    config: RunConfig, model: nn.Module, data: DataBundle, plan: FreezePlan, output_dir: str
) -> RunConfig:
    """``config`` with ``[data]``, ``[model]`` and ``[finetune]`` taken from the actual run.

    Args:
        config: the run's configuration (its loader/optim/train sections are kept).
        model: the model being trained.
        data: its data.
        plan: the freezing plan in force.
        output_dir: the run directory, as it is to be recorded.

    Returns:
        The configuration the run directory and checkpoints record.
    """
    finetune = dataclasses.replace(
        config.finetune,
        strategy=plan.strategy.name,
        options=plan.state_dict()["options"],
        bn_policy=plan.bn_policy,
    )
    train = dataclasses.replace(config.train, output_dir=output_dir)
    return dataclasses.replace(
        config,
        data=data_section(data, config.train.seed),
        model=model_section(model),
        finetune=finetune,
        train=train,
    )


def is_class_path(name: str) -> bool:
    """Whether ``model.name`` is a custom module's class path (``pkg.module.Class``).

    Example:
        >>> is_class_path("mypkg.nets.MyNet"), is_class_path("resnet18")
        (True, False)
    """
    return re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", name) is not None


def custom_model_error(name: str, what: str) -> ConfigError:
    """The error for a run whose model finetune_kit cannot rebuild (a custom ``nn.Module``).

    Args:
        name: the class path recorded as ``model.name``.
        what: what was asked (``"resume this run"``, ``"evaluate this run"`` ...).

    Returns:
        The error to raise.
    """
    return ConfigError(
        f"Cannot {what} from the command line: its model is a custom nn.Module ({name}) that "
        "finetune_kit cannot rebuild. Do it in Python: build the model, then "
        "fk.Trainer(model, data, ...).fit(resume=RUN) (or fk.load_weights(model, RUN) and "
        ".test()); or register a builder with fk.register_model to use it from configs."
    )


def fill_hint(template: str, **values: str) -> str:
    """Fill ``{name}`` / ``{name!r}`` placeholders of a resume hint (braces in paths stay intact).

    Example:
        >>> fill_hint("fit(resume={checkpoint!r}) in {run_dir}", checkpoint="a/b", run_dir="a")
        "fit(resume='a/b') in a"
    """
    for key, value in values.items():
        template = template.replace(f"{{{key}!r}}", repr(str(value))).replace(f"{{{key}}}", str(value))
    return template
