"""Optimizers looked up by name: the registry, :func:`create_optimizer` and :func:`list_optimizers`.

The optimizer is built over the parameter groups of :mod:`~finetune_kit.optim.param_groups`.
Common hyper-parameters (``momentum``, ``nesterov``, ``betas``, ``eps``) are passed to the
optimizers that have them and left out for the others; ``nesterov=True`` for an optimizer
without it raises, and so does ``weight_decay > 0`` for one without weight decay.

Example:
    >>> from torch import nn
    >>> from finetune_kit.optim import create_optimizer
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    >>> opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4)
    >>> [(g["name"], g["weight_decay"], len(g["params"])) for g in opt.param_groups]
    [('decay', 0.0005, 2), ('no_decay', 0.0, 4)]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.optim.param_groups import groups_from
from finetune_kit.registry import Registry, accepted_options

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "create_optimizer",
    "list_optimizers",
    "register_optimizer",
]

_COMMON = ("momentum", "nesterov", "betas", "eps")


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer: the class and which common hyper-parameters it takes.

    Args:
        factory: called as ``factory(groups, lr=..., weight_decay=..., **kwargs)``.
        uses: the names from ``("momentum", "nesterov", "betas", "eps")`` it accepts.
        weight_decay: whether it accepts ``weight_decay``.

    Example:
        >>> import torch
        >>> OptimizerSpec(torch.optim.SGD, uses=("momentum", "nesterov")).uses
        ('momentum', 'nesterov')
    """

    factory: Callable[..., Optimizer]
    uses: tuple[str, ...] = ()
    weight_decay: bool = True


# create_optimizer passes these itself; the optimizer class's other keywords are its options.
_RESERVED = ("params", "lr", "weight_decay")
OPTIMIZERS: Registry[OptimizerSpec] = Registry(
    "optimizer", options=lambda spec: accepted_options(spec.factory, reserved=_RESERVED)
)


def register_optimizer(
    name: str,
    factory: Callable[..., Optimizer],
    *,
    uses: Iterable[str] = (),
    weight_decay: bool = True,
    override: bool = False,
) -> OptimizerSpec:
    """Register an optimizer class (or factory) under ``name``.

    Args:
        name: lowercase snake_case key.
        factory: an ``Optimizer`` subclass or a function with the same call signature.
        uses: which of ``momentum``, ``nesterov``, ``betas``, ``eps`` it accepts.
        weight_decay: whether it accepts ``weight_decay``.
        override: replace an existing entry instead of raising.

    Returns:
        The registered :class:`OptimizerSpec`.

    Raises:
        ConfigError: the name is malformed or taken, or ``uses`` names an unknown option.

    Example:
        >>> import torch
        >>> spec = register_optimizer("my_sgd", torch.optim.SGD, uses=["momentum"])
        >>> OPTIMIZERS.unregister("my_sgd")
    """
    uses = tuple(uses)
    for key in uses:
        if key not in _COMMON:
            raise ConfigError(f"uses may only name {', '.join(_COMMON)}; got {key!r}.")
    return OPTIMIZERS.register(name, OptimizerSpec(factory, uses, weight_decay), override=override)


for _name, _cls, _uses in [
    ("sgd", torch.optim.SGD, ("momentum", "nesterov")),
    ("adam", torch.optim.Adam, ("betas", "eps")),
    ("adamw", torch.optim.AdamW, ("betas", "eps")),
    ("rmsprop", torch.optim.RMSprop, ("momentum", "eps")),
    ("adagrad", torch.optim.Adagrad, ("eps",)),
    ("adadelta", torch.optim.Adadelta, ("eps",)),
    ("adamax", torch.optim.Adamax, ("betas", "eps")),
    ("nadam", torch.optim.NAdam, ("betas", "eps")),
    ("radam", torch.optim.RAdam, ("betas", "eps")),
    ("asgd", torch.optim.ASGD, ()),
    ("adafactor", torch.optim.Adafactor, ()),
]:
    register_optimizer(_name, _cls, uses=_uses)
register_optimizer("rprop", torch.optim.Rprop, weight_decay=False)


def list_optimizers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered optimizers matching a shell-style glob.

    Args:
        pattern: a shell-style glob, e.g. ``"*"`` (all) or ``"res*"``.

    Returns:
        The sorted names of the registered optimizers that match.

    Example:
        >>> list_optimizers("adam*")
        ['adam', 'adamax', 'adamw']
    """
    return OPTIMIZERS.list(pattern)


def _hyper_kwargs(name: str, spec: OptimizerSpec, common: dict[str, Any]) -> dict[str, Any]:
    if common["nesterov"] and "nesterov" not in spec.uses:
        hint = " Use 'nadam' for Nesterov momentum with Adam." if "betas" in spec.uses else ""
        raise ConfigError(f"The optimizer {name!r} has no nesterov option.{hint}")
    if common["nesterov"] and not common["momentum"] > 0:
        raise ConfigError("nesterov=True needs momentum > 0.")
    kwargs = {k: common[k] for k in spec.uses if common[k] is not None}
    if "nesterov" in kwargs and not kwargs["nesterov"]:
        kwargs.pop("nesterov")
    return kwargs


def _backend_kwargs(
    name: str, factory: Callable[..., Any], foreach: bool | None, fused: bool | None
) -> dict[str, Any]:
    accepted = inspect.signature(factory).parameters
    kwargs = {}
    for key, value in (("foreach", foreach), ("fused", fused)):
        if value is not None:
            if key not in accepted:
                raise ConfigError(f"The optimizer {name!r} has no {key} implementation; leave {key}=None.")
            kwargs[key] = value
    return kwargs


def create_optimizer(
    model_or_param_groups: nn.Module | Iterable[Any],
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float | None = None,
    no_decay_norm_bias: bool = True,
    lr_multipliers: Mapping[str, float] | None = None,
    foreach: bool | None = None,
    fused: bool | None = None,
    **options: Any,
) -> Optimizer:
    """Build the optimizer registered as ``name`` over a model's trainable parameters.

    Args:
        model_or_param_groups: an ``nn.Module`` (grouped by :func:`param_groups`), an iterable
            of parameters (1-D ones get no decay), or of group dicts (used as given; missing
            ``lr_mult`` is derived from ``lr`` or 1.0).
        name: a name from :func:`list_optimizers`.
        lr: the base learning rate; each group starts at ``lr * lr_mult``.
        weight_decay: weight decay of the decaying groups.
        momentum: for ``sgd`` and ``rmsprop``; ignored by optimizers without momentum.
        nesterov: Nesterov momentum (``sgd`` only).
        betas: for the Adam family.
        eps: numerical epsilon; None keeps each optimizer's own default.
        no_decay_norm_bias: no weight decay on biases and norm weights.
        lr_multipliers: qualified parameter name -> lr multiplier (model input only).
        foreach: PyTorch's multi-tensor implementation; None lets PyTorch choose.
        fused: PyTorch's fused implementation; None lets PyTorch choose.
        **options: other keyword arguments of the optimizer class (e.g. ``amsgrad=True``).

    Returns:
        The optimizer; its ``defaults["lr"]`` is the base ``lr``.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: a bad value, an option the optimizer lacks, or nothing to train.

    Example:
        >>> from torch import nn
        >>> opt = create_optimizer(nn.Linear(2, 2), "adamw", lr=1e-3, weight_decay=0.05)
        >>> type(opt).__name__, opt.param_groups[0]["lr"]
        ('AdamW', 0.001)
    """
    spec = OPTIMIZERS.get(name)
    if not lr > 0:
        raise ConfigError(f"lr must be > 0; got {lr}.")
    if not weight_decay >= 0:
        raise ConfigError(f"weight_decay must be >= 0; got {weight_decay}.")
    if weight_decay > 0 and not spec.weight_decay:
        raise ConfigError(f"The optimizer {name!r} has no weight decay; set weight_decay=0.")
    common = {"momentum": momentum, "nesterov": nesterov, "betas": tuple(betas), "eps": eps}
    kwargs = _hyper_kwargs(name, spec, common)
    kwargs.update(_backend_kwargs(name, spec.factory, foreach, fused))
    OPTIMIZERS.check_options(name, options)
    kwargs.update(options)
    if spec.weight_decay:
        kwargs["weight_decay"] = weight_decay
    groups = groups_from(model_or_param_groups, lr, weight_decay, no_decay_norm_bias, lr_multipliers)
    try:
        return spec.factory(groups, lr=lr, **kwargs)
    except ValueError as err:
        raise ConfigError(f"Cannot create the optimizer {name!r}: {err}") from err
