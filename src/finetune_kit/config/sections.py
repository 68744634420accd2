"""The six sections of a run configuration, one small dataclass each.

A TOML file has one table per section::

    [data]                        # which dataset, where, how it is split
    dataset = "fashion_mnist"
    [loader]                      # how batches are made
    batch_size = 128
    [model]                       # which network and weights
    name = "convnet"
    [optim]                       # loss, optimizer, scheduler, regularisation
    lr = 0.05
    [finetune]                    # what trains: freezing strategy, BatchNorm policy
    strategy = "full"
    [train]                       # the loop: epochs, device, precision, run directory
    epochs = 3

Each dataclass checks its values when built; :class:`~finetune_kit.config.RunConfig` checks
keys and types.

Example:
    >>> LoaderConfig(batch_size=64).batch_size
    64
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = [
    "LOGGERS",
    "PRECISIONS",
    "DataConfig",
    "FinetuneConfig",
    "LoaderConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
]


def _check_range(section: str, key: str, value: Any, *, low: float, inclusive: bool = True) -> None:
    if value is None:
        return
    ok = value >= low if inclusive else value > low
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ConfigError(f"{section}.{key} must be {bound}, got {value!r}.")


def _check_choice(section: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{section}.{key} must be one of {', '.join(map(repr, choices))}, got {value!r}."
            f"{did_you_mean(str(value), [str(c) for c in choices])}"
        )


@dataclass
class DataConfig:
    """Which dataset to use and how to split it.

    Args:
        dataset: a registered dataset name (``finetune-kit list datasets``).
        root: a directory holding the dataset files; ``None`` searches the standard places.
        val_fraction: share of the training set held out for validation (stratified).
        preset: transform preset (``"auto"`` picks from the dataset and the model's weights).
        download: allow downloading when the files are found nowhere.
        channels: convert images to 1 (grayscale) or 3 (RGB) channels (unset: as stored).
        classes: keep only these classes (names or indices), relabelled in this order.
        limit: keep at most this many images per split, stratified and seeded (a quick try).
        seed: seed of the validation split and of ``limit`` (unset: ``train.seed``).
        options: extra keyword arguments for the dataset builder.
    """

    dataset: str = "fashion_mnist"
    root: str | None = None
    val_fraction: float = 0.1
    preset: str = "auto"
    download: bool = True
    channels: int | None = None
    classes: list[Any] | None = None
    limit: int | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(
                f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}. "
                "Use e.g. 0.1 to hold out 10% of the training set, or 0 for no validation set."
            )
        if self.channels is not None:
            _check_choice("data", "channels", self.channels, (1, 3))
        _check_range("data", "seed", self.seed, low=0)
        _check_range("data", "limit", self.limit, low=1)


@dataclass
class LoaderConfig:
    """How batches are made.

    Args:
        batch_size: training batch size (per process).
        eval_batch_size: batch size for validation/test; ``None`` means twice ``batch_size``.
        num_workers: DataLoader worker processes (the DataLoader path only).
        loader: ``"auto"``, ``"device"`` (whole split on the device) or ``"dataloader"``.
        augment: apply the preset's training augmentation.
    """

    batch_size: int = 128
    eval_batch_size: int | None = None
    num_workers: int = 0
    loader: str = "auto"
    augment: bool = True

    def __post_init__(self) -> None:
        _check_range("loader", "batch_size", self.batch_size, low=1)
        _check_range("loader", "eval_batch_size", self.eval_batch_size, low=1)
        _check_range("loader", "num_workers", self.num_workers, low=0)
        _check_choice("loader", "loader", self.loader, ("auto", "device", "dataloader"))


@dataclass
class ModelConfig:
    """Which network to build.

    Args:
        name: a registered model name (``finetune-kit list models``).
        weights: ``None``, ``"imagenet"``, a torchvision weights name, or a path.
        small_input: use a 32-pixel stem (ResNets).
        dropout: dropout before the classification head.
        seed: seed of the new layers' initial weights (unset: ``train.seed``).
        options: extra keyword arguments for the model builder.
    """

    name: str = "convnet"
    weights: str | None = None
    small_input: bool = False
    dropout: float = 0.0
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}.")
        _check_range("model", "seed", self.seed, low=0)


@dataclass
class OptimConfig:
    """Loss, optimizer, learning-rate schedule and regularisation.

    Args:
        loss: a registered loss name.
        label_smoothing: label smoothing for cross-entropy losses.
        optimizer: a registered optimizer name.
        optimizer_options: extra keyword arguments of that optimizer (e.g. ``{betas = [0.9,
            0.99], eps = 1e-6}`` for ``adamw``), checked against its signature.
        lr: base learning rate, or ``"find"``: run the learning-rate range test on the training
            set first (with this run's optimizer, parameter groups and freezing) and train with
            its suggestion, which the run's ``config.toml`` records.
        momentum: momentum (SGD, RMSprop).
        nesterov: Nesterov momentum (SGD).
        weight_decay: L2 / decoupled weight decay.
        no_decay_norm_bias: exempt biases and normalisation parameters from weight decay.
        scheduler: a registered scheduler name.
        warmup_epochs: linear warmup length, in epochs (fractions allowed).
        scheduler_options: extra keyword arguments for the scheduler.
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        grad_accum: accumulate gradients over this many batches per optimizer step.
        ema: decay of an exponential moving average of the weights, ramped up from 0.1 over
            the first steps (``None``: no EMA); evaluation then uses the averaged weights.
        mixup_alpha: Beta(alpha, alpha) of mixup, applied per batch on the device (0: off).
        cutmix_alpha: Beta(alpha, alpha) of cutmix (0: off); with both on, one is picked per
            batch at random.
    """

    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    optimizer: str = "sgd"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    lr: float | str = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_norm_bias: bool = True
    scheduler: str = "constant"
    warmup_epochs: float = 0.0
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    grad_accum: int = 1
    ema: float | None = None
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.lr, str):
            if self.lr != "find":
                raise ConfigError(
                    f'optim.lr must be a number > 0 or "find" (run the lr range test first), got {self.lr!r}.'
                )
        else:
            _check_range("optim", "lr", self.lr, low=0.0, inclusive=False)
        _check_range("optim", "momentum", self.momentum, low=0.0)
        _check_range("optim", "weight_decay", self.weight_decay, low=0.0)
        _check_range("optim", "warmup_epochs", self.warmup_epochs, low=0.0)
        _check_range("optim", "grad_clip", self.grad_clip, low=0.0, inclusive=False)
        _check_range("optim", "grad_accum", self.grad_accum, low=1)
        _check_range("optim", "mixup_alpha", self.mixup_alpha, low=0.0)
        _check_range("optim", "cutmix_alpha", self.cutmix_alpha, low=0.0)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"optim.ema must be a decay in (0, 1), e.g. 0.999, got {self.ema!r}.")


@dataclass
class FinetuneConfig:
    """What trains: the freezing strategy and the BatchNorm policy of frozen stages.

    Args:
        strategy: a registered freezing strategy (``finetune-kit list strategies``); unset, the
            model trains as it comes: a strategy already applied with ``apply_strategy``, or
            the ``requires_grad`` flags set by hand, are kept; a fresh model trains fully.
        bn_policy: ``"eval"`` (frozen BatchNorm keeps its running stats), ``"train"`` or
            ``"frozen_affine"``.
        options: extra keyword arguments for the strategy (e.g. ``{n = 2}``); for a recipe,
            ``decay`` (two_stage) and ``every`` (gradual).
        recipe: run a FineTuner recipe (``"two_stage"``, ``"gradual"``, ``"linear_probe"``)
            instead of one Trainer run with ``strategy``.
        freeze_epochs: epochs of the head-only stage of the ``two_stage`` recipe.
    """

    strategy: str | None = None
    bn_policy: str = "eval"
    options: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    freeze_epochs: int = 1

    def __post_init__(self) -> None:
        _check_choice("finetune", "bn_policy", self.bn_policy, ("eval", "train", "frozen_affine"))
        _check_range("finetune", "freeze_epochs", self.freeze_epochs, low=1)


PRECISIONS = ("32", "bf16-mixed", "16-mixed", "auto")
LOGGERS = ("csv", "json", "tensorboard")
"""The metric files ``train.loggers`` can name: metrics.csv, metrics.json, TensorBoard events."""


@dataclass
class TrainConfig:
    """The loop: length, device, precision, reproducibility and the run directory.

    Args:
        epochs: number of epochs.
        max_steps: stop after this many optimizer steps (``None``: run all epochs); a stop inside
            an epoch saves ``last.ckpt`` at that exact position and records no epoch row.
        precision: ``"32"``, ``"bf16-mixed"``, ``"16-mixed"`` or ``"auto"`` (bfloat16 autocast
            where the device computes in bfloat16 natively: a recent GPU, a CPU with AVX512-BF16
            or AMX; float32 elsewhere).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        seed: seed for weights of new layers, data order and augmentation.
        deterministic: use deterministic algorithms (slower on GPU, exact resume on CPU).
        channels_last: use the channels_last memory format (``None``: on for CUDA).
        compile: compile the model with ``torch.compile``.
        output_dir: the run directory.
        overwrite: allow reusing an existing run directory (its run files are replaced).
        checkpoint_every: also write ``last.ckpt`` every this many optimizer steps inside an
            epoch (``None``: at the end of each epoch only).
        log_every: read the running loss from the device every this many steps (and, under
            DDP, check for a stop signal).
        sync_batchnorm: under DDP, turn BatchNorm layers into SyncBatchNorm.
        progress: allow tqdm progress bars. They are drawn at ``verbosity = 1`` when the output
            is a terminal (or a notebook); ``progress = false`` prints one line per epoch instead.
        verbosity: what the console shows, as in Keras: ``0`` nothing, ``1`` the weights and
            trainable summary, then progress bars on a terminal or one line per epoch
            elsewhere (a file, a CI log), and the end summary; ``2`` the same with one plain
            line per epoch always. ``train.log`` in the run directory gets the lines whatever
            the verbosity.
        loggers: metric files written each epoch: ``"csv"`` (metrics.csv), ``"json"``
            (metrics.json), ``"tensorboard"`` (event files in tensorboard/, needs the
            ``tensorboard`` package).
        plots: draw the run's figures into ``plots/``: learning curves after fit, and the
            confusion matrix, per-class accuracy and worst mistakes after test (needs
            matplotlib; ``None``: on when matplotlib is installed).
        metrics: extra validation metrics besides loss and accuracy (``finetune-kit list
            metrics``), logged as ``val_<name>``, e.g. ``["top_k_accuracy", "f1"]``.
        tta: test-time augmentation for validation and test: ``"flip"`` averages the
            predictions of each image and its mirror image (``None``: off).
        threads: torch's CPU threads during the run: a number, or ``"auto"`` (the CPUs this
            process may use, fewer when the load average says other jobs are busy on them);
            printed when a run starts on the CPU.
    """

    epochs: int = 5
    max_steps: int | None = None
    precision: str = "32"
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    channels_last: bool | None = None
    compile: bool = False
    output_dir: str = "runs/default"
    overwrite: bool = False
    checkpoint_every: int | None = None
    log_every: int = 50
    sync_batchnorm: bool = False
    progress: bool = True
    verbosity: int = 1
    loggers: list[str] = field(default_factory=lambda: ["csv"])
    plots: bool | None = None
    metrics: list[str] = field(default_factory=list)
    tta: str | None = None
    threads: int | str = "auto"

    def __post_init__(self) -> None:
        _check_range("train", "epochs", self.epochs, low=1)
        _check_range("train", "max_steps", self.max_steps, low=1)
        _check_range("train", "log_every", self.log_every, low=1)
        _check_range("train", "checkpoint_every", self.checkpoint_every, low=1)
        _check_range("train", "seed", self.seed, low=0)
        _check_choice("train", "precision", str(self.precision), PRECISIONS)
        if self.tta is not None:
            _check_choice("train", "tta", self.tta, ("flip",))
        if self.verbosity not in (0, 1, 2) or isinstance(self.verbosity, bool):
            raise ConfigError(
                f"train.verbosity must be 0 (silent), 1 (bars on a terminal, else one line per "
                f"epoch) or 2 (one line per epoch), got {self.verbosity!r}."
            )
        for name in self.loggers:
            _check_choice("train", "loggers", name, LOGGERS)
        if self.threads != "auto" and (type(self.threads) is not int or self.threads < 1):
            raise ConfigError(
                f"train.threads must be a positive integer or 'auto', got {self.threads!r}. "
                "Use e.g. threads = 2, or threads = 'auto' to fit the machine."
            )
        if not self.output_dir:
            raise ConfigError("train.output_dir must not be empty; give a directory such as 'runs/exp1'.")
