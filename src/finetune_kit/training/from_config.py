"""From a :class:`~finetune_kit.config.RunConfig` to a ready :class:`~finetune_kit.Trainer`, and back.

This is what the CLI does with a config file, and what Python users can call to run a config:
build the datasets, build the model for them, and hand both to a Trainer. The way back,
:func:`evaluate_checkpoint`, rebuilds a saved run's data and model from its checkpoint and tests it.

Example:
    >>> from finetune_kit.config import RunConfig, apply_overrides, load_config
    >>> import tempfile
    >>> cfg = RunConfig.from_dict({"data": {"dataset": "fake", "options": {"train_size": 40,
    ...     "test_size": 20, "in_channels": 1, "image_size": 28}}, "train": {"epochs": 1,
    ...     "progress": False, "output_dir": tempfile.mkdtemp() + "/run"}})
    >>> trainer = build_trainer(cfg)
    >>> trainer.model.finetune_kit_info.name
    'convnet'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from finetune_kit.config import RunConfig, apply_overrides, load_config
from finetune_kit.data import DataBundle, adapt_to_weights, create_datasets
from finetune_kit.data.fingerprint import check_same_data
from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.inference.load import load_model
from finetune_kit.models import create_model, list_models
from finetune_kit.models.info import INFO_ATTR, ModelInfo
from finetune_kit.storage.checkpoint import find_checkpoint, load_checkpoint
from finetune_kit.training.evaluator import Evaluator
from finetune_kit.training.run_description import custom_model_error, is_class_path
from finetune_kit.training.trainer import Trainer

__all__ = [
    "build_datasets",
    "build_model",
    "build_trainer",
    "config_from_checkpoint",
    "evaluate_checkpoint",
    "weights_meta",
]


def build_datasets(config: RunConfig, *, split_file: str | Path | None = None) -> DataBundle:
    """Create the datasets a config describes (``split_file`` reuses a saved split).

    Raises:
        ConfigError: the config records in-memory tensors, which are not stored with a run.
    """
    data = config.data
    if data.dataset == "tensors" and not data.options:
        raise ConfigError(
            "This run was trained on in-memory tensors (create_datasets('tensors', ...)), which "
            "are not stored with the run. Build the DataBundle again in Python and pass it to "
            "fk.Trainer(model, data, ...)."
        )
    return create_datasets(
        data.dataset,
        root=data.root,
        val_fraction=data.val_fraction,
        seed=config.train.seed if data.seed is None else data.seed,
        preset=data.preset,
        download=data.download,
        split_file=split_file,
        channels=data.channels,
        classes=data.classes,
        limit=data.limit,
        **data.options,
    )


def build_model(config: RunConfig, bundle: DataBundle, *, pretrained: bool = True) -> nn.Module:
    """Create the model a config describes, sized for ``bundle`` (classes and channels).

    Args:
        config: the run configuration.
        bundle: the data the model is for.
        pretrained: load ``model.weights``; False builds the same architecture with fresh
            weights (for a resume or an evaluation, whose checkpoint holds the weights).

    Raises:
        ConfigError: ``model.name`` is a custom module's class path (finetune_kit cannot build it).
    """
    m = config.model
    if is_class_path(m.name) and m.name not in list_models():
        raise custom_model_error(m.name, "build this run's model")
    return create_model(
        m.name,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        weights=m.weights if pretrained else None,
        small_input=m.small_input,
        dropout=m.dropout,
        seed=config.train.seed if m.seed is None else m.seed,
        **m.options,
    )


def build_trainer(config: RunConfig, *, resume: str | Path | None = None, **trainer_kwargs: Any) -> Trainer:
    """Datasets, model and Trainer for ``config``; when resuming, the run's saved split is reused.

    Args:
        config: the run configuration.
        resume: the checkpoint or run directory that will be resumed (its split is reused).
        **trainer_kwargs: extra Trainer arguments, e.g. ``callbacks=[...]``.

    Returns:
        A :class:`~finetune_kit.Trainer`, ready for ``fit(resume=resume)``.

    Example:
        >>> import tempfile
        >>> cfg = RunConfig.from_dict({"data": {"dataset": "fake", "options": {"train_size": 20,
        ...     "test_size": 4, "in_channels": 1, "image_size": 16}}, "model": {"name": "lenet",
        ...     "options": {"input_size": 16}}, "train": {"output_dir": tempfile.mkdtemp()}})
        >>> build_trainer(cfg).data.name
        'fake'
    """
    split_file = None
    if resume is not None:
        split = find_checkpoint(resume).parent / "split.json"
        split_file = split if split.is_file() else None
    bundle = build_datasets(config, split_file=split_file)
    model = build_model(config, bundle, pretrained=resume is None)  # a checkpoint holds the weights
    bundle = adapt_to_weights(bundle, weights_meta(model), preset=config.data.preset)
    return Trainer(model, bundle, config=config, **trainer_kwargs)


def weights_meta(model) -> dict[str, Any]:
    """What a data preset needs to know of the model's pretrained weights (empty: none)."""
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo) or info.weights is None:
        return {}
    values = {"mean": info.mean, "std": info.std, "input_size": info.input_size}
    return {key: value for key, value in values.items() if value is not None}


def config_from_checkpoint(path: str | Path) -> RunConfig:
    """The config of the run to resume at ``path``.

    Args:
        path: a checkpoint, a run directory, or a fine-tuning recipe's directory (whose
            ``config.toml`` names the recipe).

    Returns:
        The resolved config stored with the run.

    Raises:
        CheckpointError: no checkpoint there, or one without a config.
    """
    recipe_config = Path(path) / "config.toml"
    if Path(path).is_dir() and not list(Path(path).glob("*.ckpt")) and recipe_config.is_file():
        config = load_config(recipe_config)
        if config.finetune.recipe is not None:
            return config
    checkpoint = find_checkpoint(path)
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(
            f"{checkpoint} holds no run configuration; it was not written by a "
            "finetune_kit Trainer. Pass the run's --config."
        )
    return RunConfig.from_dict(state["config"], source=str(checkpoint))


def evaluate_checkpoint(
    source: str | Path, *, device: str = "auto", print_report: bool = True, overrides: list[str] = ()
):
    """Test the weights of a checkpoint on the test set of the run that wrote it.

    The dataset is rebuilt from the checkpoint's config (with the run's saved split) and the
    model from its stored architecture (its EMA weights when the run kept an EMA, as the
    Trainer evaluates); no pretrained weights are downloaded.

    Args:
        source: a ``.ckpt`` file or a run directory.
        device: where to evaluate.
        print_report: print the report.
        overrides: ``key=value`` changes to the run's config before the data are rebuilt, e.g.
            ``["data.root=/new/place"]`` when the dataset moved (the data must still be the
            run's: its fingerprint is checked).

    Returns:
        The :class:`~finetune_kit.metrics.report.ClassificationReport`.

    Raises:
        CheckpointError: missing, corrupted or unsafe checkpoint, or weights that do not fit.

    Example:
        >>> import tempfile
        >>> import finetune_kit as fk
        >>> cfg = fk.RunConfig.from_dict({"data": {"dataset": "fake", "options": {
        ...     "train_size": 24, "test_size": 8, "in_channels": 1, "image_size": 16}},
        ...     "model": {"name": "lenet", "options": {"input_size": 16}},
        ...     "train": {"epochs": 1, "progress": False, "output_dir": tempfile.mkdtemp() + "/r"}})
        >>> trainer = fk.build_trainer(cfg)
        >>> _ = trainer.fit()
        >>> report = evaluate_checkpoint(trainer.run_dir.root, device="cpu", print_report=False)
        >>> sum(map(sum, report.confusion))
        8
    """
    path = find_checkpoint(source)
    config = apply_overrides(config_from_checkpoint(path), list(overrides))
    if is_class_path(config.model.name) and config.model.name not in list_models():
        raise custom_model_error(config.model.name, "evaluate this run")
    split = path.parent / "split.json"
    bundle = build_datasets(config, split_file=split if split.is_file() else None)
    loaded = load_model(path)  # rebuilds the architecture (LoRA included), EMA weights if any
    check_same_data(loaded.meta, bundle.meta(), where=str(path))
    evaluator = Evaluator(loaded.model, bundle, config=config, device=device)
    return evaluator.test(save=False, print_report=print_report)
