"""Optimizers looked up by name, and the parameter groups they are built on.

:func:`param_groups` splits a model's trainable parameters into groups: no weight decay on
1-D parameters (biases and the affine weights of BatchNorm / LayerNorm / GroupNorm, as timm
does; configurable) and one group per learning-rate multiplier (the freezing strategies give
earlier stages smaller multipliers). Every group carries ``"lr_mult"`` and ``"name"``; its
initial ``"lr"`` is ``base_lr * lr_mult``, and the schedulers keep it so at every step.

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
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.registry import Registry, did_you_mean

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "add_param_group",
    "create_optimizer",
    "list_optimizers",
    "param_groups",
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


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def register_optimizer(name: str, factory: Callable[..., Optimizer], *,
                       uses: Iterable[str] = (), weight_decay: bool = True,
                       override: bool = False) -> OptimizerSpec:
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


def _no_decay_names(model: nn.Module) -> set[str]:
    """Names the model asks to exclude from weight decay (timm's ``no_weight_decay()``)."""
    hook = getattr(model, "no_weight_decay", None)
    return set(hook()) if callable(hook) else set()


def _check_multipliers(lr_multipliers: Mapping[str, float], names: list[str]) -> None:
    for key, mult in lr_multipliers.items():
        if key not in names:
            raise ConfigError(
                f"lr_multipliers names {key!r}, which is not a parameter of the model."
                f"{did_you_mean(key, names)} Use qualified names from model.named_parameters()."
            )
        if not float(mult) >= 0.0:
            raise ConfigError(f"lr multiplier of {key!r} must be >= 0; got {mult}.")


def param_groups(model: nn.Module, *, weight_decay: float, no_decay_norm_bias: bool = True,
                 lr_multipliers: Mapping[str, float] | None = None,
                 exclude: Iterable[Tensor] = ()) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into optimizer parameter groups.

    Frozen parameters (``requires_grad=False``) and those in ``exclude`` are left out; every
    other parameter lands in exactly one group. Groups are keyed by (decay or not, lr
    multiplier) and listed in the order their first parameter appears in the model.

    Args:
        model: the model.
        weight_decay: weight decay of the decaying groups.
        no_decay_norm_bias: put 1-D parameters (biases, norm weights), ``*.bias`` and the names
            from ``model.no_weight_decay()`` in groups with ``weight_decay=0``.
        lr_multipliers: qualified parameter name -> lr multiplier (missing names: 1.0).
        exclude: parameters to leave out (e.g. those already in an optimizer, after an
            unfreeze: ``exclude=[p for g in opt.param_groups for p in g["params"]]``).

    Returns:
        Group dicts with ``"params"``, ``"weight_decay"``, ``"lr_mult"`` and ``"name"``.

    Raises:
        ConfigError: ``lr_multipliers`` names an unknown parameter or a negative multiplier.

    Example:
        >>> from torch import nn
        >>> groups = param_groups(nn.Linear(3, 2), weight_decay=0.01,
        ...                       lr_multipliers={"weight": 0.1})
        >>> [(g["name"], g["lr_mult"]) for g in groups]
        [('decay lr_mult=0.1', 0.1), ('no_decay', 1.0)]
    """
    named = list(model.named_parameters())
    multipliers = dict(lr_multipliers or {})
    _check_multipliers(multipliers, [n for n, _ in named])
    skip = {id(p) for p in exclude}
    no_decay = _no_decay_names(model)
    split = no_decay_norm_bias and weight_decay > 0
    groups: dict[tuple[bool, float], dict[str, Any]] = {}
    for name, param in named:
        if not param.requires_grad or id(param) in skip:
            continue
        plain = param.ndim <= 1 or name.endswith(".bias") or name in no_decay
        decay = not (split and plain)
        mult = float(multipliers.get(name, 1.0))
        if (decay, mult) not in groups:
            label = ("decay" if decay else "no_decay") if split else "all"
            suffix = "" if mult == 1.0 else f" lr_mult={mult:g}"
            groups[(decay, mult)] = {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                     "lr_mult": mult, "name": label + suffix}
        groups[(decay, mult)]["params"].append(param)
    return list(groups.values())


def _normalise_group(group: Mapping[str, Any], base_lr: float, index: int) -> dict[str, Any]:
    """Copy a user group; fill ``lr_mult`` (from ``lr`` if given), ``name`` and ``lr``."""
    out = dict(group)
    if "params" not in out:
        raise ConfigError(f"parameter group {index} has no 'params' key.")
    params = out["params"]
    out["params"] = [params] if isinstance(params, Tensor) else list(params)
    if "lr_mult" not in out:
        out["lr_mult"] = float(out["lr"]) / base_lr if "lr" in out else 1.0
    out["lr_mult"] = float(out["lr_mult"])
    lr = base_lr * out["lr_mult"]
    if "lr" in out and abs(float(out["lr"]) - lr) > 1e-12 * max(1.0, lr):
        raise ConfigError(
            f"parameter group {index} sets lr={out['lr']} and lr_mult={out['lr_mult']}, but "
            f"the base lr is {base_lr}: give only one of them."
        )
    out["lr"] = lr
    out.setdefault("name", f"group{index}")
    return out


def _groups_from(source: nn.Module | Iterable[Any], lr: float, weight_decay: float,
                 no_decay_norm_bias: bool,
                 lr_multipliers: Mapping[str, float] | None) -> list[dict[str, Any]]:
    if isinstance(source, nn.Module):
        groups = param_groups(source, weight_decay=weight_decay,
                              no_decay_norm_bias=no_decay_norm_bias,
                              lr_multipliers=lr_multipliers)
    else:
        items = [source] if isinstance(source, Tensor) else list(source)
        if items and all(isinstance(item, Mapping) for item in items):
            groups = list(items)
        elif all(isinstance(item, Tensor) for item in items):
            if lr_multipliers:
                raise ConfigError("lr_multipliers needs a model (names) rather than parameters.")
            holder = nn.Module()
            for i, param in enumerate(items):
                holder.register_parameter(f"p{i}", param)
            groups = param_groups(holder, weight_decay=weight_decay,
                                  no_decay_norm_bias=no_decay_norm_bias)
        else:
            raise ConfigError(
                "create_optimizer takes a model, parameters, or parameter-group dicts; "
                f"got a mix or something else: {type(items[0]).__name__}."
            )
    groups = [_normalise_group(g, lr, i) for i, g in enumerate(groups)]
    if not any(g["params"] for g in groups):
        raise ConfigError(
            "There are no trainable parameters to optimize: every parameter has "
            "requires_grad=False. Unfreeze some layers (e.g. apply a freezing strategy)."
        )
    return groups


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


def _backend_kwargs(name: str, factory: Callable[..., Any], foreach: bool | None,
                    fused: bool | None) -> dict[str, Any]:
    accepted = inspect.signature(factory).parameters
    kwargs = {}
    for key, value in (("foreach", foreach), ("fused", fused)):
        if value is not None:
            if key not in accepted:
                raise ConfigError(f"The optimizer {name!r} has no {key} implementation; "
                                  f"leave {key}=None.")
            kwargs[key] = value
    return kwargs


def create_optimizer(model_or_param_groups: nn.Module | Iterable[Any], name: str, *, lr: float,
                     weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False,
                     betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
                     no_decay_norm_bias: bool = True,
                     lr_multipliers: Mapping[str, float] | None = None,
                     foreach: bool | None = None, fused: bool | None = None,
                     **options: Any) -> Optimizer:
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
    _check_options(name, spec.factory, options)
    kwargs.update(options)
    if spec.weight_decay:
        kwargs["weight_decay"] = weight_decay
    groups = _groups_from(model_or_param_groups, lr, weight_decay, no_decay_norm_bias,
                          lr_multipliers)
    try:
        return spec.factory(groups, lr=lr, **kwargs)
    except ValueError as err:
        raise ConfigError(f"Cannot create the optimizer {name!r}: {err}") from err


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    accepted = [k for k in params if k not in ("self", "params", "lr", "weight_decay")]
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"The optimizer {name!r} has no option {key!r}.{did_you_mean(key, accepted)} "
                f"Its options are: {', '.join(accepted)}."
            )


class _Schedules(Protocol):
    def add_param_group(self, group: dict[str, Any]) -> None: ...


def add_param_group(optimizer: Optimizer, scheduler: _Schedules | None,
                    group: Mapping[str, Any]) -> dict[str, Any]:
    """Add a parameter group mid-run (e.g. after an unfreeze) so that it is scheduled too.

    The group gets ``"lr_mult"`` (default 1.0, or ``lr / base_lr`` when it gives ``lr``) and a
    ``"name"``. With a scheduler, the scheduler adds it and sets its lr for the current step;
    without one, its lr is ``optimizer.defaults["lr"] * lr_mult``.

    Args:
        optimizer: the optimizer.
        scheduler: the :class:`~finetune_kit.schedulers.Scheduler` driving it, or None.
        group: a dict with ``"params"`` and optional ``"lr_mult"``, ``"weight_decay"``, ...

    Returns:
        The group as stored in ``optimizer.param_groups``.

    Raises:
        ConfigError: the group is malformed.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> opt = create_optimizer(a, "sgd", lr=0.1)
        >>> g = add_param_group(opt, None, {"params": b.parameters(), "lr_mult": 0.5})
        >>> g["lr"], g["name"]
        (0.05, 'group1')
    """
    if scheduler is not None:
        index = len(optimizer.param_groups)
        scheduler.add_param_group(dict(group))
        return optimizer.param_groups[index]
    out = _normalise_group(group, optimizer.defaults["lr"], len(optimizer.param_groups))
    optimizer.add_param_group(out)
    return optimizer.param_groups[-1]
