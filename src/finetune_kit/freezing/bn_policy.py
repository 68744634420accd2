"""What BatchNorm layers do while part of a model is frozen: the BatchNorm policy.

A frozen layer must not change, and for a BatchNorm layer that means its running mean and
variance too: in training mode they drift towards the new data with every forward pass, even
with ``requires_grad=False`` (the bug behind Lightning #13902 and pytorch #66073). The policy
says, explicitly, what happens to them:

=================  ==========================================================================
policy             effect
=================  ==========================================================================
``"eval"``         (default) frozen BatchNorm layers always run in eval mode: they normalise
                   with their running statistics and never update them, even after
                   ``model.train()``. Their affine parameters are frozen.
``"train"``        frozen BatchNorm layers follow the model's mode: their running statistics
                   update in training mode (the affine parameters stay frozen).
``"frozen_affine"``  *every* BatchNorm layer, in frozen and trainable stages alike, runs in eval
                   mode with frozen affine parameters: a fixed per-channel affine map, as
                   torchvision's ``FrozenBatchNorm2d`` (detectron2's convention).
=================  ==========================================================================

A BatchNorm layer counts as *frozen* when none of its parameters trains; one without affine
parameters counts as frozen when no parameter of its stage trains. The BatchNorm layers that
are not frozen follow ``model.train()`` / ``model.eval()`` as usual.

How "eval" survives ``model.train()``: each BatchNorm layer gets one forward pre-hook
(:func:`keep_eval_hook`) that sets ``module.training = False`` before every forward pass when
the layer's flag ``finetune_kit_keep_eval`` is set. The hook and the flag live on the module,
so they survive ``copy.deepcopy`` (EMA copies) and pickling; switching the policy only flips
the flag. ``module.training`` may read True between ``model.train()`` and the next forward
pass, but no forward pass ever runs the layer in training mode.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    >>> set_keep_eval(net[1], True)
    >>> before = net[1].running_mean.clone()
    >>> _ = net.train()(torch.randn(4, 1, 5, 5))
    >>> torch.equal(before, net[1].running_mean), net[1].training
    (True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from finetune_kit.errors import ConfigError
from finetune_kit.registry import did_you_mean

__all__ = [
    "BN_POLICIES",
    "KEEP_EVAL_ATTR",
    "apply_bn_policy",
    "batchnorm_affine_names",
    "batchnorm_layers",
    "check_bn_policy",
    "is_batchnorm",
    "keep_eval_hook",
    "set_keep_eval",
]

BN_POLICIES = ("eval", "train", "frozen_affine")
"""The BatchNorm policies, default first."""

KEEP_EVAL_ATTR = "finetune_kit_keep_eval"
"""Flag on a BatchNorm module: when True, its forward pre-hook forces eval mode."""

_HOOKED_ATTR = "finetune_kit_keep_eval_hooked"


def check_bn_policy(policy: str) -> str:
    """Return ``policy`` if it is one of :data:`BN_POLICIES`.

    Args:
        policy: ``"eval"``, ``"train"`` or ``"frozen_affine"``.

    Returns:
        The policy.

    Raises:
        ConfigError: an unknown policy; the message lists the valid ones.

    Example:
        >>> check_bn_policy("eval")
        'eval'
    """
    if policy not in BN_POLICIES:
        raise ConfigError(
            f"bn_policy must be one of {', '.join(repr(p) for p in BN_POLICIES)}; got "
            f"{policy!r}.{did_you_mean(str(policy), BN_POLICIES)}"
        )
    return policy


def is_batchnorm(module: nn.Module) -> bool:
    """True for BatchNorm layers (1d/2d/3d, lazy and SyncBatchNorm), not for other norms.

    Example:
        >>> is_batchnorm(nn.BatchNorm2d(3)), is_batchnorm(nn.GroupNorm(1, 3))
        (True, False)
    """
    return isinstance(module, _BatchNorm)


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(qualified name, module)`` pairs of every BatchNorm layer of ``model``, in order.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        >>> [name for name, _ in batchnorm_layers(net)]
        ['1']
    """
    return [(name, m) for name, m in model.named_modules() if is_batchnorm(m)]


def keep_eval_hook(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: run the layer in eval mode while its keep-eval flag is set.

    Args:
        module: the BatchNorm layer.
        args: the forward arguments (unused).

    Example:
        >>> bn = nn.BatchNorm1d(2)
        >>> bn.finetune_kit_keep_eval = True
        >>> keep_eval_hook(bn, ())
        >>> bn.training
        False
    """
    if getattr(module, KEEP_EVAL_ATTR, False):
        module.training = False


def set_keep_eval(module: nn.Module, keep_eval: bool, *, training: bool | None = None) -> None:
    """Keep a BatchNorm layer in eval mode for every forward pass, or let it follow its model.

    The pre-hook is registered once per module (marked by an attribute) and then only the flag
    changes, so calling this again never stacks hooks.

    Args:
        module: a BatchNorm layer.
        keep_eval: True to force eval mode before every forward pass.
        training: when releasing a layer that was kept in eval mode, the mode to give it now
            (its model's mode); None leaves ``module.training`` as it is.

    Raises:
        ConfigError: ``module`` is not a BatchNorm layer.

    Example:
        >>> bn = nn.BatchNorm2d(3)
        >>> set_keep_eval(bn, True)
        >>> set_keep_eval(bn, False, training=True)
        >>> bn.training, bn.finetune_kit_keep_eval
        (True, False)
    """
    if not is_batchnorm(module):
        raise ConfigError(f"set_keep_eval expects a BatchNorm layer, got {type(module).__name__}.")
    was_kept = getattr(module, KEEP_EVAL_ATTR, False)
    if keep_eval and not getattr(module, _HOOKED_ATTR, False):
        module.register_forward_pre_hook(keep_eval_hook)
        setattr(module, _HOOKED_ATTR, True)
    if keep_eval or hasattr(module, KEEP_EVAL_ATTR):
        setattr(module, KEEP_EVAL_ATTR, bool(keep_eval))
    if keep_eval:
        module.training = False
    elif was_kept and training is not None:
        module.training = bool(training)


def batchnorm_affine_names(model: nn.Module) -> set[str]:
    """Qualified names of the affine parameters of every BatchNorm layer.

    Example:
        >>> sorted(batchnorm_affine_names(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))))
        ['1.bias', '1.weight']
    """
    return {
        f"{m}.{p}" if m else p
        for m, bn in batchnorm_layers(model)
        for p, _ in bn.named_parameters(recurse=False)
    }


def apply_bn_policy(
    model: nn.Module, policy: str, trainable: Collection[str], stage_trains: Callable[[str], bool]
) -> dict[str, str]:
    """Put every BatchNorm layer of ``model`` in the mode the policy gives it.

    Args:
        model: the model, whose ``requires_grad`` flags are already set.
        policy: one of :data:`BN_POLICIES`.
        trainable: qualified names of the trainable parameters.
        stage_trains: for an affine-free layer's name, whether any parameter of its stage
            trains (such a layer is frozen with its stage).

    Returns:
        Layer name -> ``"eval"`` (kept in eval mode), ``"train"`` (frozen, statistics update)
        or ``"follows model"`` (trainable).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
        >>> apply_bn_policy(net, "eval", {"2.weight", "2.bias"}, lambda name: False)
        {'1': 'eval'}
    """
    check_bn_policy(policy)
    ids = {id(p) for n, p in model.named_parameters() if n in set(trainable)}
    modes = {}
    for name, bn in batchnorm_layers(model):
        own = list(bn.parameters(recurse=False))
        frozen = not any(id(p) in ids for p in own) if own else not stage_trains(name)
        keep = policy == "frozen_affine" or (frozen and policy == "eval")
        set_keep_eval(bn, keep, training=model.training)
        modes[name] = "eval" if keep else ("train" if frozen else "follows model")
    return modes
