"""FineTuner: one-call fine-tuning recipes built on the Trainer.

A recipe is a list of stages; each stage is a normal :class:`~finetune_kit.Trainer` run with its
own freezing strategy, learning rate and run directory (``<output_dir>/1-head``,
``<output_dir>/2-full`` ...), so every stage has its own checkpoints and can be resumed.

Recipes:

- ``"two_stage"`` (fastai's ``fine_tune``): train the new head for ``freeze_epochs`` with the
  backbone frozen (frozen BatchNorm in eval mode), then unfreeze everything for ``epochs`` with
  discriminative learning rates (the head at ``lr / 2``, each earlier stage ``decay`` times less).
- ``"gradual"``: one run that starts with the head only and unfreezes one more stage from the top
  every ``every`` epochs (ULMFiT), the scheduler driving the new groups.
- ``"linear_probe"``: only the head trains, for ``epochs``.

Example:
    >>> import tempfile
    >>> import finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16,
    ...                           train_size=48, test_size=12)
    >>> ft = FineTuner(model="lenet", dataset=data, weights=None, recipe="two_stage",
    ...                epochs=1, freeze_epochs=1, batch_size=16, progress=False,
    ...                model_options={"input_size": 16}, output_dir=tempfile.mkdtemp() + "/ft")
    >>> [stage.name for stage in ft.stages]
    ['head', 'full']
    >>> len(ft.fit())
    2
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from finetune_kit.callbacks import Callback
from finetune_kit.config import RunConfig, build_section, route_options, save_config
from finetune_kit.data import DataBundle, adapt_to_weights
from finetune_kit.errors import ConfigError, OutputDirError
from finetune_kit.registry import Registry
from finetune_kit.training.from_config import build_datasets, build_model, weights_meta
from finetune_kit.training.run_description import data_section, fill_hint, model_section
from finetune_kit.training.state import History
from finetune_kit.training.trainer import Trainer

__all__ = ["RECIPES", "FineTuner", "RecipeStage", "list_recipes"]


@dataclass(frozen=True)
class RecipeStage:
    """One Trainer run of a recipe.

    Attributes:
        name: short name, also the run sub-directory (``<index>-<name>``).
        strategy: the freezing strategy of this stage.
        epochs: epochs of this stage.
        lr: the stage's base learning rate (``"find"``: the stage runs the lr range test with
            its own freezing first).
        strategy_options: keyword arguments of the strategy.
    """

    name: str
    strategy: str
    epochs: int
    lr: float | str
    strategy_options: dict[str, Any] = field(default_factory=dict)


RECIPES: Registry = Registry("recipe")


@RECIPES.register("two_stage")
def _two_stage(*, epochs: int, freeze_epochs: int, lr: float, decay: float, every: int) -> list[RecipeStage]:
    return [
        RecipeStage("head", "linear_probe", freeze_epochs, lr),
        RecipeStage("full", "discriminative_lr", epochs, lr / 2, {"decay": decay}),
    ]


@RECIPES.register("gradual")
def _gradual(*, epochs: int, freeze_epochs: int, lr: float, decay: float, every: int) -> list[RecipeStage]:
    return [RecipeStage("gradual", "gradual_unfreeze", epochs, lr, {"every": every})]


@RECIPES.register("linear_probe")
def _linear_probe(
    *, epochs: int, freeze_epochs: int, lr: float, decay: float, every: int
) -> list[RecipeStage]:
    return [RecipeStage("head", "linear_probe", epochs, lr)]


def list_recipes(pattern: str = "*") -> list[str]:
    """Names of the registered fine-tuning recipes.

    Args:
        pattern: a shell-style glob, e.g. ``"two*"``.

    Returns:
        The sorted recipe names.

    Example:
        >>> list_recipes()
        ['gradual', 'linear_probe', 'two_stage']
    """
    return RECIPES.list(pattern)


class FineTuner:
    """Fine-tune a (pretrained) model on a dataset with a named recipe.

    Args:
        model: a registered model name, or an ``nn.Module`` (built for the dataset).
        dataset: a registered dataset name, or a :class:`~finetune_kit.DataBundle`.
        weights: pretrained weights for a model given by name (``"imagenet"``, a path, None).
        recipe: ``"two_stage"``, ``"gradual"`` or ``"linear_probe"`` (:func:`list_recipes`).
        epochs: epochs of the main stage (after the head-only stage of ``two_stage``).
        freeze_epochs: epochs of the head-only stage of ``two_stage``.
        lr: base learning rate (``two_stage`` halves it for the unfrozen stage); ``"find"``
            runs the lr range test at the start of each stage, with that stage's freezing.
        decay: discriminative learning-rate decay per stage (``two_stage``).
        every: unfreeze one more stage every this many epochs (``gradual``).
        small_input: build a 32-pixel stem for a ResNet given by name.
        model_options: extra keyword arguments for the model builder.
        data_options: extra keyword arguments for the dataset builder.
        output_dir: the parent run directory; stages go into sub-directories.
        config: a run configuration to start from (its ``finetune`` section names the recipe).
        callbacks: extra callbacks, given to every stage's Trainer.
        **options: Trainer options (``batch_size``, ``optimizer``, ``precision``, ``seed`` ...).

    Returns:
        A FineTuner; :meth:`fit` runs its stages and returns their combined history.

    Raises:
        UnknownNameError: unknown recipe, model or dataset.
        ConfigError: a bad option.

    Example:
        >>> import tempfile
        >>> from finetune_kit import create_datasets
        >>> data = create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                        train_size=16, test_size=4)
        >>> ft = FineTuner(model="lenet", dataset=data, weights=None, recipe="linear_probe",
        ...                epochs=1, progress=False, model_options={"input_size": 16},
        ...                output_dir=tempfile.mkdtemp() + "/ft")
        >>> [stage.strategy for stage in ft.stages]
        ['linear_probe']
    """

    def __init__(
        self,
        model: str | nn.Module = "resnet18",
        *,
        dataset: str | DataBundle = "cifar10",
        weights: str | None = "imagenet",
        recipe: str = "two_stage",
        epochs: int = 5,
        freeze_epochs: int = 1,
        lr: float | str | None = None,
        decay: float = 0.5,
        every: int = 1,
        small_input: bool = False,
        model_options: dict[str, Any] | None = None,
        data_options: dict[str, Any] | None = None,
        output_dir: str = "runs/finetune",
        config: RunConfig | None = None,
        callbacks: list[Callback] | None = None,
        **options: Any,
    ) -> None:
        config = config or RunConfig()
        if lr is not None:
            options["lr"] = lr
        self.config = _configure(
            config,
            model=model,
            dataset=dataset,
            weights=weights,
            small_input=small_input,
            model_options=model_options,
            data_options=data_options,
            output_dir=output_dir,
            options=options,
        )
        if epochs < 1 or freeze_epochs < 1 or every < 1:
            raise ConfigError(
                f"epochs, freeze_epochs and every must be >= 1; got {epochs}, {freeze_epochs}, {every}."
            )
        find = self.config.optim.lr == "find"  # then every stage runs the range test for itself
        self.stages = RECIPES.get(recipe)(
            epochs=epochs,
            freeze_epochs=freeze_epochs,
            lr=1.0 if find else self.config.optim.lr,
            decay=decay,
            every=every,
        )
        if find:
            self.stages = [dataclasses.replace(stage, lr="find") for stage in self.stages]
        self.recipe = recipe
        # The recipe's own settings, so that its config.toml rebuilds the same stages.
        self.config = dataclasses.replace(
            self.config,
            finetune=dataclasses.replace(
                self.config.finetune,
                recipe=recipe,
                freeze_epochs=freeze_epochs,
                options={"decay": decay, "every": every},
            ),
            train=dataclasses.replace(self.config.train, epochs=epochs),
        )
        self.callbacks = list(callbacks or [])
        self.data = dataset if isinstance(dataset, DataBundle) else build_datasets(self.config)
        self.model = model if isinstance(model, nn.Module) else build_model(self.config, self.data)
        if not isinstance(dataset, DataBundle):  # a bundle given is used as it is, preset included
            self.data = adapt_to_weights(self.data, weights_meta(self.model), preset=self.config.data.preset)
        self.trainer: Trainer | None = None
        # How to resume after an interruption ({output_dir}: the recipe's directory).
        self.resume_hint = "FineTuner(..., output_dir={output_dir!r}).fit(resume=True)"

    @classmethod
    def from_config(cls, config: RunConfig) -> FineTuner:
        """The FineTuner that a config's ``[finetune] recipe`` describes (the CLI uses this)."""
        ft = config.finetune
        if ft.recipe is None:
            raise ConfigError("finetune.recipe is not set; use 'two_stage', 'gradual' or 'linear_probe'.")
        return cls(
            config.model.name,
            dataset=config.data.dataset,
            weights=config.model.weights,
            recipe=ft.recipe,
            epochs=config.train.epochs,
            freeze_epochs=ft.freeze_epochs,
            decay=float(ft.options.get("decay", 0.5)),
            every=int(ft.options.get("every", 1)),
            output_dir=config.train.output_dir,
            config=config,
        )

    def stage_dir(self, index: int) -> Path:
        """The run directory of stage ``index`` (0-based)."""
        return Path(self.config.train.output_dir) / f"{index + 1}-{self.stages[index].name}"

    def fit(self, resume: bool = False) -> History:
        """Run every stage in order.

        Args:
            resume: continue an interrupted fine-tuning: stages with a ``last.ckpt`` are resumed
                (a finished stage just reloads its final weights), the others start afresh.

        Returns:
            The epoch rows of all stages, in order (each row has a ``stage`` key).
        """
        self._write_recipe_config(resume)
        hint = fill_hint(self.resume_hint, output_dir=self.config.train.output_dir)
        combined = History()
        for index, stage in enumerate(self.stages):
            trainer = self._stage_trainer(index, stage)
            trainer.resume_hint = hint
            checkpoint = self.stage_dir(index) / "last.ckpt"
            history = trainer.fit(resume=checkpoint if resume and checkpoint.is_file() else None)
            for row in history.rows:
                combined.append({"stage": stage.name, **row})
            self.trainer = trainer
            if history.interrupted:
                combined.interrupted = True
                break
        combined.stop_reason = self.trainer.history.stop_reason
        return combined

    def _write_recipe_config(self, resume: bool) -> None:
        """``<output_dir>/config.toml``: the recipe as a config, so the whole recipe can resume."""
        root = Path(self.config.train.output_dir)
        path = root / "config.toml"
        if not resume and path.exists() and not self.config.train.overwrite:
            raise OutputDirError(
                f"{root} already holds a fine-tuning run; nothing was changed. Resume it "
                f"(fit(resume=True); finetune-kit train --resume {root}), choose another "
                "output_dir, or pass overwrite=True (--overwrite)."
            )
        config = dataclasses.replace(
            self.config,
            data=data_section(self.data, self.config.train.seed),
            model=model_section(self.model),
        )
        try:
            root.mkdir(parents=True, exist_ok=True)
            save_config(config, path)
        except OSError as exc:
            raise OutputDirError(
                f"Cannot write {path}: {exc.strerror or exc}. Choose another output_dir."
            ) from None

    def _stage_trainer(self, index: int, stage: RecipeStage) -> Trainer:
        finetune = dataclasses.replace(
            self.config.finetune, strategy=stage.strategy, options=dict(stage.strategy_options), recipe=None
        )
        optim = dataclasses.replace(self.config.optim, lr=stage.lr)
        train = dataclasses.replace(
            self.config.train, epochs=stage.epochs, output_dir=str(self.stage_dir(index))
        )
        config = dataclasses.replace(self.config, finetune=finetune, optim=optim, train=train)
        return Trainer(self.model, self.data, config=config, callbacks=list(self.callbacks))

    def test(self, **kwargs: Any):
        """Test the fine-tuned model (see :meth:`Trainer.test`); call :meth:`fit` first."""
        if self.trainer is None:
            raise ConfigError("Call FineTuner.fit() before test().")
        return self.trainer.test(**kwargs)


# FineTuner(data_options=...) keys that are [data] settings rather than dataset-builder options.
_DATA_KEYS = ("root", "val_fraction", "preset", "download", "channels", "seed")


def _configure(
    config: RunConfig,
    *,
    model: str | nn.Module,
    dataset: str | DataBundle,
    weights: str | None,
    small_input: bool,
    model_options: dict[str, Any] | None,
    data_options: dict[str, Any] | None,
    output_dir: str,
    options: dict[str, Any],
) -> RunConfig:
    """Fold the FineTuner's arguments into a RunConfig (saved with each stage's run)."""
    data = config.data
    if isinstance(dataset, str):
        given = dict(data_options or {})
        settings = {k: given.pop(k) for k in _DATA_KEYS if k in given}
        data = build_section(
            "data",
            {
                **dataclasses.asdict(data),
                **settings,
                "dataset": dataset,
                "options": {**data.options, **given},
            },
            source="FineTuner",
        )
    elif data_options:
        raise ConfigError("data_options apply to a dataset given by name; a DataBundle is used as it is.")
    model_cfg = config.model
    if isinstance(model, str):
        model_cfg = dataclasses.replace(
            model_cfg,
            name=model,
            weights=weights,
            small_input=small_input,
            options={**model_cfg.options, **(model_options or {})},
        )
    train = dataclasses.replace(config.train, output_dir=output_dir)
    config = dataclasses.replace(config, data=data, model=model_cfg, train=train)
    return route_options(config, options)
