"""The model registry: built-in and user models looked up by name.

Every entry of :data:`MODELS` is a :class:`ModelEntry`: a build function plus what
``create_model`` needs to know about the architecture (torchvision weights, input sizes,
stages, whether it has a small-input stem). Users add their own models with
:func:`register_model`; their builder is a plain function of ``num_classes`` and
``in_channels``.

Example:
    >>> from torch import nn
    >>> from finetune_kit.models import create_model, list_models, register_model
    >>> @register_model("tiny_mlp", input_size=(8, 8))
    ... def tiny_mlp(*, num_classes, in_channels, hidden=32):
    ...     return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.ReLU(),
    ...                          nn.Linear(hidden, num_classes))
    >>> list_models("tiny*")
    ['tiny_mlp']
    >>> create_model("tiny_mlp", num_classes=3, hidden=16)[3]
    Linear(in_features=16, out_features=3, bias=True)
    >>> MODELS.unregister("tiny_mlp")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models.info import Stages
from finetune_kit.registry import Registry

__all__ = ["MODELS", "BuildSpec", "ModelEntry", "list_models", "register_model"]

Size = tuple[int, int]


@dataclass(frozen=True)
class BuildSpec:
    """What ``create_model`` asks a builder for (validated before the builder sees it).

    Attributes:
        num_classes: outputs of the head.
        in_channels: input channels.
        small_input: whether a small-input stem was asked for.
        dropout: dropout probability on the head's input.
        seed: the build seed (the global RNG is already seeded with it during the build).
        options: model-specific keyword options, e.g. ``{"input_size": 28}``.

    Example:
        >>> BuildSpec(num_classes=10, in_channels=1).options
        mappingproxy({})
    """

    num_classes: int
    in_channels: int = 3
    small_input: bool = False
    dropout: float = 0.0
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and what it is.

    Attributes:
        name: registry key.
        build: ``build(spec) -> nn.Module`` for a :class:`BuildSpec`.
        options: extra keyword options the builder accepts (``None``: any).
        small_input: ``"stem"`` (``small_input=True`` swaps in a 32-pixel stem), ``"native"``
            (a small-input net already; the flag changes nothing), ``"builder"`` (passed on to
            a user builder, which decides) or ``"none"`` (refused).
        sizes: ``sizes(spec) -> (input_size, min_input_size)``.
        stages: ``stages(model) -> Stages``, or None for top-level children.
        torchvision_name: name for ``torchvision.models.get_model_weights``, or None.
        summary: one line for listings and docs.

    Example:
        >>> MODELS.get("resnet18").torchvision_name
        'resnet18'
    """

    name: str
    build: Callable[[BuildSpec], nn.Module]
    options: tuple[str, ...] | None = ()
    small_input: Literal["stem", "native", "builder", "none"] = "none"
    sizes: Callable[[BuildSpec], tuple[Size, Size]] = lambda spec: ((224, 224), (1, 1))
    stages: Callable[[nn.Module], Stages] | None = None
    torchvision_name: str | None = None
    summary: str = ""


_COMMON = ["num_classes", "in_channels", "weights", "small_input", "dropout", "seed"]

MODELS: Registry[ModelEntry] = Registry("model", options=lambda entry: entry.options, common=_COMMON)
"""Every model ``create_model`` can build, by name."""


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style pattern.

    Args:
        pattern: glob such as ``"resnet*"``; ``"*"`` lists all.

    Returns:
        The matching names.

    Example:
        >>> list_models("resnet1*")
        ['resnet101', 'resnet152', 'resnet18']
    """
    return MODELS.list(pattern)


def register_model(
    name: str,
    builder: Callable[..., nn.Module] | None = None,
    *,
    input_size: Size = (224, 224),
    min_input_size: Size | None = None,
    summary: str = "",
    override: bool = False,
) -> Any:
    """Register a user model builder under ``name`` (usable as a decorator).

    The builder is called as ``builder(num_classes=..., in_channels=..., **options)`` inside
    a seeded RNG, and must return an ``nn.Module``. ``create_model`` passes ``small_input``
    and ``dropout`` only when the builder has parameters of those names (asking for them from a
    builder without them raises), and ``options`` only when they match its parameters (or it
    takes ``**kwargs``). Weights from a file or run directory work for any model; torchvision
    names (``"imagenet"``) only for the built-in torchvision models.

    Args:
        name: lowercase snake_case key.
        builder: the function; omit it to use ``register_model`` as a decorator.
        input_size: the recommended ``(H, W)`` input.
        min_input_size: the smallest ``(H, W)`` it runs on (default: ``input_size``).
        summary: one line describing the model.
        override: replace an existing registration on purpose.

    Returns:
        The builder itself (or a decorator returning it), unchanged.

    Raises:
        ConfigError: bad name, name taken, or a builder without ``num_classes``/``in_channels``.

    Example:
        >>> from torch import nn
        >>> def linear(*, num_classes, in_channels):
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        >>> register_model("my_linear", linear) is linear
        True
        >>> MODELS.unregister("my_linear")
    """

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name, _user_entry(name, fn, input_size, min_input_size, summary), override=override)
        return fn

    return add if builder is None else add(builder)


def _user_entry(
    name: str, fn: Callable[..., nn.Module], input_size: Size, min_size: Size | None, summary: str
) -> ModelEntry:
    if not callable(fn):
        raise ConfigError(f"register_model({name!r}) needs a callable builder, got {fn!r}.")
    params = inspect.signature(fn).parameters
    any_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for required in ("num_classes", "in_channels"):
        if required not in params and not any_kwargs:
            raise ConfigError(
                f"The builder of model {name!r} must take a {required!r} keyword argument: "
                f"def {getattr(fn, '__name__', 'build')}(*, num_classes, in_channels, ...)."
            )
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    reserved = ("num_classes", "in_channels", "small_input", "dropout")
    own = tuple(p for p, param in params.items() if param.kind in named and p not in reserved)
    takes = {flag: flag in params or any_kwargs for flag in ("small_input", "dropout")}
    sizes = (tuple(input_size), tuple(min_size or input_size))

    def build(spec: BuildSpec) -> nn.Module:
        kwargs = dict(spec.options, num_classes=spec.num_classes, in_channels=spec.in_channels)
        for flag, default in (("small_input", False), ("dropout", 0.0)):
            value = getattr(spec, flag)
            if takes[flag]:
                kwargs[flag] = value
            elif value != default:
                raise ConfigError(
                    f"Model {name!r} does not take {flag}={value!r}: its builder has no "
                    f"{flag!r} parameter. Leave {flag} at its default, or add the parameter."
                )
        return fn(**kwargs)

    return ModelEntry(
        name=name,
        build=build,
        options=None if any_kwargs else own,
        small_input="builder",
        sizes=lambda spec: sizes,
        summary=summary or (inspect.getdoc(fn) or "").split("\n")[0],
    )
