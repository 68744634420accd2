"""Parameter groups: a model's trainable parameters split for weight decay and lr multipliers.

:func:`param_groups` splits a model's trainable parameters into groups: no weight decay on
1-D parameters (biases and the affine weights of BatchNorm / LayerNorm / GroupNorm, as timm
does; configurable) and one group per learning-rate multiplier (the freezing strategies give
earlier stages smaller multipliers). Every group carries ``"lr_mult"`` and ``"name"``; its
initial ``"lr"`` is ``base_lr * lr_mult``, and the schedulers keep it so at every step.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    >>> [(g["name"], len(g["params"])) for g in param_groups(model, weight_decay=5e-4)]
    [('decay', 2), ('no_decay', 4)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from torch import Tensor, nn
from torch.optim import Optimizer

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = ["add_param_group", "groups_from", "normalise_group", "param_groups"]


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


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    no_decay_norm_bias: bool = True,
    lr_multipliers: Mapping[str, float] | None = None,
    exclude: Iterable[Tensor] = (),
) -> list[dict[str, Any]]:
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
            groups[(decay, mult)] = {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_mult": mult,
                "name": label + suffix,
            }
        groups[(decay, mult)]["params"].append(param)
    return list(groups.values())


def normalise_group(group: Mapping[str, Any], base_lr: float, index: int) -> dict[str, Any]:
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


def groups_from(
    source: nn.Module | Iterable[Any],
    lr: float,
    weight_decay: float,
    no_decay_norm_bias: bool,
    lr_multipliers: Mapping[str, float] | None,
) -> list[dict[str, Any]]:
    if isinstance(source, nn.Module):
        groups = param_groups(
            source,
            weight_decay=weight_decay,
            no_decay_norm_bias=no_decay_norm_bias,
            lr_multipliers=lr_multipliers,
        )
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
            groups = param_groups(holder, weight_decay=weight_decay, no_decay_norm_bias=no_decay_norm_bias)
        else:
            raise ConfigError(
                "create_optimizer takes a model, parameters, or parameter-group dicts; "
                f"got a mix or something else: {type(items[0]).__name__}."
            )
    groups = [normalise_group(g, lr, i) for i, g in enumerate(groups)]
    if not any(g["params"] for g in groups):
        raise ConfigError(
            "There are no trainable parameters to optimize: every parameter has "
            "requires_grad=False. Unfreeze some layers (e.g. apply a freezing strategy)."
        )
    return groups


class _Schedules(Protocol):
    def add_param_group(self, group: dict[str, Any]) -> None: ...


def add_param_group(
    optimizer: Optimizer, scheduler: _Schedules | None, group: Mapping[str, Any]
) -> dict[str, Any]:
    """Add a parameter group mid-run (e.g. after an unfreeze) so that it is scheduled too.

    The group gets ``"lr_mult"`` (default 1.0, or ``lr / base_lr`` when it gives ``lr``) and a
    ``"name"``. With a scheduler, the scheduler adds it and sets its lr for the current step;
    without one, its lr is ``optimizer.defaults["lr"] * lr_mult``.

    Args:
        optimizer: the optimizer.
        scheduler: the :class:`~finetune_kit.optim.schedulers.factory.Scheduler` driving it, or None.
        group: a dict with ``"params"`` and optional ``"lr_mult"``, ``"weight_decay"``, ...

    Returns:
        The group as stored in ``optimizer.param_groups``.

    Raises:
        ConfigError: the group is malformed.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> opt = torch.optim.SGD(a.parameters(), lr=0.1)
        >>> g = add_param_group(opt, None, {"params": b.parameters(), "lr_mult": 0.5})
        >>> g["lr"], g["name"]
        (0.05, 'group1')
    """
    if scheduler is not None:
        index = len(optimizer.param_groups)
        scheduler.add_param_group(dict(group))
        return optimizer.param_groups[index]
    out = normalise_group(group, optimizer.defaults["lr"], len(optimizer.param_groups))
    optimizer.add_param_group(out)
    return optimizer.param_groups[-1]
