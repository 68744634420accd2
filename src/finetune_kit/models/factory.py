"""``create_model``: build a registered model, fit it to the task, load its weights.

Example:
    >>> from finetune_kit.models import create_model, model_info
    >>> net = create_model("resnet18", num_classes=10, in_channels=1, small_input=True)
    >>> net.conv1, model_info(net).input_size
    (Conv2d(1, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False), (32, 32))
"""

from __future__ import annotations

import warnings
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models._checks import check_dropout, check_in_channels, check_num_classes
from finetune_kit.models.heads import get_head
from finetune_kit.models.info import ModelInfo, set_model_info
from finetune_kit.models.load import load_weights
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry
from finetune_kit.models.stages import default_stages
from finetune_kit.models.weights import WeightsSource
from finetune_kit.runtime.reproducibility import check_seed

__all__ = ["create_model"]


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    weights: WeightsSource | None = None,
    small_input: bool = False,
    dropout: float = 0.0,
    seed: int = 0,
    **options: Any,
) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes, with optional weights.

    The build runs under a forked CPU RNG seeded with ``seed``: the same arguments give the
    same model, and the caller's global RNG is left as it was. For the torchvision models the
    head is replaced by a new one initialised from ``seed``, and everything else follows from
    the weights. The returned model carries a :class:`ModelInfo` (``model_info(model)``).

    Args:
        name: a name from :func:`list_models`, e.g. ``"resnet18"``.
        num_classes: outputs of the head.
        in_channels: input channels; the input conv is adapted, keeping pretrained filters (1
            channel: kernels summed over RGB; N: repeated cyclically and scaled by 3/N).
        weights: None (random), ``"imagenet"`` / ``"DEFAULT"`` / a torchvision weights name,
            a path to a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.ckpt`` file or a run
            directory, or a state dict. Head tensors are skipped when ``num_classes`` differs
            from the weights'; call :func:`load_weights` yourself to get the LoadReport.
        small_input: ResNets: 3x3 stride-1 first conv and no max-pool, for 32-pixel images
            (conv1 resampled from the 7x7 one). A no-op for ``convnet``, ``lenet``,
            ``resnet9``; refused for the other torchvision models.
        dropout: dropout probability on the head's input (the architectures' own dropout
            layers are kept as they are).
        seed: seed of the build (and of the new head).
        **options: model options (``input_size`` for ``convnet`` / ``lenet``; a user
            builder's own parameters). Aliases for timm users: ``pretrained=True`` means
            ``weights="imagenet"``, ``in_chans`` means ``in_channels``.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        UnknownNameError: no model of that name (the message lists them).
        ConfigError: a bad argument or unknown option.
        CheckpointError: the weights cannot be read, or none of them fits.

    Example:
        >>> net = create_model("convnet", num_classes=10, in_channels=1, seed=0)
        >>> net.fc2
        Linear(in_features=128, out_features=10, bias=True)
    """
    weights, in_channels = _aliases(options, weights, in_channels)
    entry = MODELS.get(name)
    spec = _spec(entry, num_classes, in_channels, small_input, dropout, seed, options)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = entry.build(spec)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"The builder of model {name!r} returned a {type(model).__name__}, not a torch.nn.Module."
        )
    set_model_info(model, _info(entry, spec, model))
    if weights is not None:
        report = load_weights(model, weights)
        if not report.ok:
            warnings.warn(f"create_model({name!r}): {report}", UserWarning, stacklevel=2)
    return model


def _aliases(options: dict[str, Any], weights: Any, in_channels: int) -> tuple[Any, int]:
    """Apply the timm-style aliases ``pretrained`` and ``in_chans`` (removed from options)."""
    if "pretrained" in options:
        pretrained = options.pop("pretrained")
        if not isinstance(pretrained, bool):
            raise ConfigError(f"pretrained must be True or False, got {pretrained!r}.")
        if pretrained and weights is not None:
            raise ConfigError(
                f"Pass either pretrained=True or weights={weights!r}, not both "
                "(pretrained=True means weights='imagenet')."
            )
        weights = "imagenet" if pretrained else weights
    if "in_chans" in options:
        in_chans = options.pop("in_chans")
        if in_channels != 3 and in_chans != in_channels:
            raise ConfigError(
                f"in_chans={in_chans!r} and in_channels={in_channels!r} disagree; "
                "in_chans is an alias of in_channels, pass one of them."
            )
        in_channels = in_chans
    return weights, in_channels


def _spec(
    entry: ModelEntry,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    dropout: float,
    seed: int,
    options: dict[str, Any],
) -> BuildSpec:
    check_num_classes(num_classes)
    check_in_channels(in_channels)
    check_dropout(dropout)
    if not isinstance(small_input, bool):
        raise ConfigError(f"small_input must be True or False, got {small_input!r}.")
    check_seed(seed)
    if small_input and entry.small_input == "none":
        stems = [n for n in MODELS if MODELS.get(n).small_input == "stem"]
        raise ConfigError(
            f"small_input=True is not available for {entry.name!r}: the 32-pixel stem exists "
            f"for {', '.join(stems)} (convnet, lenet and resnet9 are small-input nets already). "
            f"{entry.name} runs on small inputs as it is (smallest "
            f"{entry.sizes(BuildSpec(num_classes))[1]}); leave small_input=False."
        )
    MODELS.check_options(entry.name, options)
    return BuildSpec(
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        dropout=float(dropout),
        seed=seed,
        options=MappingProxyType(dict(options)),
    )


def _info(entry: ModelEntry, spec: BuildSpec, model: nn.Module) -> ModelInfo:
    head, _ = get_head(model)
    input_size, min_input_size = entry.sizes(spec)
    stages = entry.stages(model) if entry.stages is not None else default_stages(model, head)
    return ModelInfo(
        name=entry.name,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        input_size=tuple(input_size),
        min_input_size=tuple(min_input_size),
        head=head,
        stages=stages,
        build_kwargs={
            "num_classes": spec.num_classes,
            "in_channels": spec.in_channels,
            "small_input": spec.small_input,
            "dropout": spec.dropout,
            "seed": spec.seed,
            **spec.options,
        },
    )
