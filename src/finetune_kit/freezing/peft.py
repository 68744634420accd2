"""Parameter-efficient fine-tuning for CNNs: LoRA on a whole model, and BitFit.

:func:`add_lora` wraps the targeted ``Conv2d`` / ``Linear`` layers of a model in the LoRA layers
of :mod:`finetune_kit.freezing.lora` (``y = base(x) + (alpha / rank) * B(A(x))``, B starting at zero, so
a freshly wrapped model computes exactly what it computed before). Only ungrouped convolutions
(``groups=1``) take LoRA. State-dict keys are predictable: a wrapped layer ``layer4.1.conv2``
holds ``layer4.1.conv2.base.weight`` (and ``.base.bias``), ``layer4.1.conv2.lora_a.weight`` and
``layer4.1.conv2.lora_b.weight``. :func:`merge_lora` folds every update into its base kernel
exactly and turns the model back into the plain architecture with the original keys, for
export; :func:`unmerge_lora` undoes a merge that kept the wrappers.

BitFit (Ben Zaken et al., 2022) trains only the biases; for CNNs the affine parameters of the
normalisation layers go with them (:func:`bitfit_param_names`). The ``lora`` and ``bitfit``
freezing strategies (:class:`LoRA`, :class:`BitFit`) are registered here.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> x = torch.randn(2, 3, 6, 6)
    >>> before = net(x)
    >>> add_lora(net, rank=2, alpha=4)
    ['0', '2']
    >>> torch.equal(net(x), before)
    True
    >>> sorted(net.state_dict())[:3]
    ['0.base.bias', '0.base.weight', '0.lora_a.weight']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.freezing.lora import (
    LoRAConv2d,
    LoRALayer,
    LoRALinear,
    check_lora_options,
    lora_layers,
    lora_param_names,
)
from finetune_kit.freezing.registry import Strategy, register_strategy
from finetune_kit.registry import did_you_mean

if TYPE_CHECKING:
    from finetune_kit.models.stages import Stage

__all__ = [
    "NORM_TYPES",
    "BitFit",
    "LoRA",
    "LoRAConv2d",
    "LoRALinear",
    "add_lora",
    "bitfit_param_names",
    "lora_layers",
    "lora_param_names",
    "merge_lora",
    "unmerge_lora",
]

NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
"""Normalisation layers whose affine parameters BitFit trains."""

TARGET_KINDS = {"conv": nn.Conv2d, "linear": nn.Linear}
"""Target keywords of :func:`add_lora` and the layer types they select."""


def _candidates(model: nn.Module, exclude: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """Conv2d/Linear layers not inside a LoRA wrapper and not excluded (nor inside one)."""
    wrapped = [name for name, _ in lora_layers(model)]
    out = []
    for name, module in model.named_modules():
        inside = [p for p in (*wrapped, *exclude) if name == p or name.startswith(p + ".")]
        if not inside and isinstance(module, nn.Conv2d | nn.Linear):
            out.append((name, module))
    return out


def _select_targets(model: nn.Module, targets: str | Iterable[str], exclude: Sequence[str]) -> list[str]:
    """Resolve target keywords and patterns to qualified module names, in model order."""
    items = [targets] if isinstance(targets, str) else list(targets)
    if not items:
        raise ConfigError("LoRA targets is empty; use ('conv', 'linear') or module name patterns.")
    candidates = _candidates(model, exclude)
    chosen: set[str] = set()
    for item in items:
        if item in TARGET_KINDS:
            kind = TARGET_KINDS[item]
            chosen.update(n for n, m in candidates if isinstance(m, kind) and getattr(m, "groups", 1) == 1)
            continue
        hits = [(n, m) for n, m in candidates if fnmatch.fnmatchcase(n, item)]
        if not hits:
            names = [n for n, _ in candidates]
            raise UnknownNameError(
                f"LoRA target {item!r} matches no Conv2d or Linear layer outside the head."
                f"{did_you_mean(item, names)} Use 'conv', 'linear' or a pattern over: "
                f"{', '.join(names[:12])}{' ...' if len(names) > 12 else ''}."
            )
        for name, module in hits:
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                raise ConfigError(
                    f"LoRA target {name!r} is a grouped convolution (groups="
                    f"{module.groups}); LoRA takes ungrouped ones only."
                )
        chosen.update(n for n, _ in hits)
    return [n for n, _ in candidates if n in chosen]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name), leaf, module)


def add_lora(
    model: nn.Module,
    *,
    rank: int = 4,
    alpha: float = 8.0,
    targets: str | Iterable[str] = ("conv", "linear"),
    exclude: Sequence[str] = (),
    seed: int | None = 0,
) -> list[str]:
    """Wrap the targeted ``Conv2d`` / ``Linear`` layers of ``model`` in LoRA layers, in place.

    Layers that are already wrapped are left as they are, so calling this twice is harmless.
    It does not freeze anything: the ``lora`` strategy does that.

    Args:
        model: the model; it must not itself be a Conv2d or Linear layer.
        rank: rank of every update.
        alpha: scale numerator (``alpha / rank``).
        targets: ``"conv"`` (every ungrouped ``nn.Conv2d``; grouped and depthwise ones are
            skipped), ``"linear"`` (every ``nn.Linear``), and/or shell patterns over qualified
            module names such as ``"layer4.*.conv2"``.
        exclude: module names left alone with everything inside them (e.g. the head).
        seed: seed of the A initialisations (None: the global RNG).

    Returns:
        The qualified names of the layers wrapped now.

    Raises:
        ConfigError: bad rank/alpha, empty targets, or a pattern naming a grouped conv.
        UnknownNameError: a pattern that matches no Conv2d/Linear layer.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> add_lora(net, targets="linear", exclude=["2"])
        ['0']
    """
    rank, alpha = check_lora_options(rank, alpha)
    names = _select_targets(model, targets, exclude)
    for i, name in enumerate(names):
        if name == "":
            raise ConfigError(
                "add_lora adapts the layers inside a model; wrap a single layer "
                "with LoRALinear / LoRAConv2d directly."
            )
        base = model.get_submodule(name)
        cls = LoRAConv2d if isinstance(base, nn.Conv2d) else LoRALinear
        layer_seed = None if seed is None else seed + i
        _set_submodule(model, name, cls(base, rank=rank, alpha=alpha, seed=layer_seed))
    return names


def merge_lora(model: nn.Module, *, unload: bool = True) -> nn.Module:
    """Fold every LoRA update into its base weight, for export or faster inference.

    Args:
        model: a model with LoRA layers (a model without any is returned unchanged).
        unload: replace each wrapper by its base layer, giving the plain architecture with
            the original state-dict keys. With False the wrappers stay, marked merged (their
            forward skips the low-rank branch), and :func:`unmerge_lora` undoes the merge.

    Returns:
        The model (changed in place), or the base layer if ``model`` itself is a wrapper.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
        >>> _ = add_lora(net, rank=2)
        >>> with torch.no_grad():
        ...     _ = net[0].lora_b.weight.normal_()
        >>> x = torch.randn(1, 2, 8, 8)
        >>> y = net(x)
        >>> plain = merge_lora(net)
        >>> type(plain[0]).__name__, torch.allclose(plain(x), y, atol=1e-5)
        ('Conv2d', True)
    """
    if isinstance(model, LoRALayer):
        model.merge()
        return model.base if unload else model
    for name, layer in lora_layers(model):
        layer.merge()
        if unload:
            _set_submodule(model, name, layer.base)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` with ``unload=False``: take the updates out of the base weights.

    Args:
        model: a model whose LoRA layers were merged (unmerged ones are left alone).

    Returns:
        The model, changed in place.

    Raises:
        ConfigError: the model has no LoRA layers (they were unloaded, or never added).

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(3, 3))
        >>> _ = add_lora(net)
        >>> w = net[0].base.weight.clone()
        >>> with torch.no_grad():
        ...     _ = net[0].lora_b.weight.fill_(0.1)
        >>> torch.allclose(unmerge_lora(merge_lora(net, unload=False))[0].base.weight, w)
        True
    """
    layers = [model] if isinstance(model, LoRALayer) else [m for _, m in lora_layers(model)]
    if not layers:
        raise ConfigError(
            "unmerge_lora found no LoRA layers. merge_lora(model) unloads them by default; "
            "merge with merge_lora(model, unload=False) to be able to unmerge."
        )
    for layer in layers:
        layer.unmerge()
    return model


def bitfit_param_names(model: nn.Module) -> list[str]:
    """Qualified names of every bias and every normalisation-layer affine parameter.

    Normalisation layers are BatchNorm (any), InstanceNorm, GroupNorm and LayerNorm.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2),
        ...                     nn.Linear(2, 2))
        >>> bitfit_param_names(net)
        ['1.weight', '1.bias', '2.bias']
    """
    names = []
    for name, _ in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if leaf == "bias" or isinstance(model.get_submodule(owner), NORM_TYPES):
            names.append(name)
    return names


# ------------------------------------------------------------- the PEFT strategies
@register_strategy("bitfit")
class BitFit(Strategy):
    """Only biases and normalisation affine parameters train, and the head (it is new).

    Args:
        train_head: also train every parameter of the head (default True).

    Example:
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
        ...                     nn.Linear(2, 2))
        >>> sorted(BitFit().trainable(net, model_stages(net), 0))
        ['0.bias', '1.bias', '1.weight', '3.bias', '3.weight']
    """

    name = "bitfit"

    def __init__(self, train_head: bool = True) -> None:
        self.train_head = bool(train_head)

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        head = set(stages[-1].params) if self.train_head else set()
        return set(bitfit_param_names(model)) | head

    def options(self) -> dict[str, Any]:
        return {"train_head": self.train_head}


@register_strategy("lora")
class LoRA(Strategy):
    """Wrap Conv2d/Linear layers outside the head in LoRA layers; only those and the head train.

    Args:
        rank: rank of each low-rank update.
        alpha: scale numerator (the update is multiplied by ``alpha / rank``).
        targets: ``"conv"``, ``"linear"`` and/or module name patterns (see
            :func:`~finetune_kit.freezing.peft.add_lora`).
        seed: seed of the LoRA initialisation.

    Example:
        >>> from finetune_kit.models.stages import model_stages
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        >>> strategy = LoRA(rank=2)
        >>> strategy.prepare(net, model_stages(net))
        >>> sorted(strategy.trainable(net, model_stages(net), 0))
        ['0.lora_a.weight', '0.lora_b.weight', '2.bias', '2.weight']
    """

    name = "lora"

    def __init__(
        self,
        rank: int = 4,
        alpha: float = 8.0,
        targets: str | Sequence[str] = ("conv", "linear"),
        seed: int = 0,
    ) -> None:
        self.rank, self.alpha, self.seed = rank, alpha, seed
        self.targets = (targets,) if isinstance(targets, str) else tuple(targets)

    def prepare(self, model: nn.Module, stages: Sequence[Stage]) -> None:
        add_lora(
            model,
            rank=self.rank,
            alpha=self.alpha,
            targets=self.targets,
            exclude=stages[-1].module_names,
            seed=self.seed,
        )
        if not lora_layers(model):
            raise ConfigError(
                f"LoRA targets {list(self.targets)} match no Conv2d or Linear "
                "layer outside the head; there is nothing to adapt."
            )

    def trainable(self, model: nn.Module, stages: Sequence[Stage], level: int) -> set[str]:
        return set(lora_param_names(model)) | set(stages[-1].params)

    def options(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets), "seed": self.seed}
