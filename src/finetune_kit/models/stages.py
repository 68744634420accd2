"""The stages of a model: named, ordered slices, input side first, head last.

A *stage* is a named, ordered slice of a model, input side first, head last: ``stem, layer1 ..
layer4, head`` for a ResNet, ``conv1, conv2, fc1, head`` for the ConvNet. Built-in models carry
their stages in their :class:`~finetune_kit.models.ModelInfo`; any other model falls back to its
top-level children that hold parameters, the last of them being the head. Every parameter
belongs to exactly one stage: the one with the longest module name that contains it. Freezing
strategies (:mod:`finetune_kit.freezing.strategies`) act on stages.

Example:
    >>> from finetune_kit.models import create_model
    >>> stages = model_stages(create_model("resnet18", num_classes=5, small_input=True))
    >>> [s.name for s in stages]
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    >>> stages[stage_of("layer3.0.conv1.weight", stages)].name
    'layer3'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models.info import INFO_ATTR, ModelInfo, Stages

__all__ = ["Stage", "default_stages", "model_stages", "split_into_stages", "stage_of", "stage_spec"]


@dataclass(frozen=True, eq=False)
class Stage:
    """One stage of a model.

    Attributes:
        name: stage name (``"stem"``, ``"layer1"``, ..., ``"head"``).
        module_names: qualified names of the modules it is made of.
        modules: those modules.
        params: qualified parameter name -> parameter, in model order.

    Example:
        >>> from torch import nn
        >>> s = model_stages(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))[0]
        >>> s.name, s.num_params, list(s.params)
        ('0', 9, ['0.weight', '0.bias'])
    """

    name: str
    module_names: tuple[str, ...]
    modules: tuple[nn.Module, ...]
    params: dict[str, nn.Parameter]

    @property
    def num_params(self) -> int:
        """Number of scalar parameters in the stage."""
        return sum(p.numel() for p in self.params.values())


def stage_of(name: str, stages: Sequence[Stage]) -> int:
    """Index of the stage that holds the parameter or module ``name`` (longest prefix wins).

    Args:
        name: a qualified parameter or module name, e.g. ``"layer1.0.conv1.weight"``.
        stages: the stages to search, as :func:`model_stages` returns them.

    Returns:
        The stage index, or -1 when no stage holds it.

    Example:
        >>> from torch import nn
        >>> stages = model_stages(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))
        >>> stage_of("1.weight", stages)
        1
    """
    best, best_len = -1, -1
    for i, stage in enumerate(stages):
        for prefix in stage.module_names:
            inside = prefix == "" or name == prefix or name.startswith(prefix + ".")
            if inside and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def default_stages(model: nn.Module, head: str | None = None) -> Stages:
    """Stages for a model without a known layout, from its top-level children.

    One stage per child that holds parameters, named after it; the child holding ``head`` (by
    default the last such child) is the stage ``"head"``. Children without parameters (ReLU,
    pooling, affine-free BatchNorm) join the stage before them (leading ones the first stage);
    parameters registered on the model itself form a first stage ``"root"``.

    Args:
        model: the model.
        head: qualified name of its head module, if known.

    Returns:
        ``((stage name, (module names...)), ...)``, input side first.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
        >>> default_stages(net)
        (('0', ('0', '1', '2')), ('head', ('3',)))
    """
    children = list(model.named_children())
    holders = [i for i, (_, c) in enumerate(children) if any(True for _ in c.parameters())]
    if not holders:
        return (("head", ("",)),)
    top = head.split(".")[0] if head else children[holders[-1]][0]
    spec: list[tuple[str, list[str]]] = []
    for i, (name, _) in enumerate(children):
        if i in holders:
            spec.append(("head" if name == top else name, [name]))
        elif spec:
            spec[-1][1].append(name)
    leading = [name for name, _ in children[: holders[0]]]
    spec[0] = (spec[0][0], leading + spec[0][1])
    if any(True for _ in model.parameters(recurse=False)):
        spec.insert(0, ("root", [""]))
    return tuple((name, tuple(modules)) for name, modules in spec)


def stage_spec(model: nn.Module) -> Stages:
    """The stage layout of ``model``: its ModelInfo's, else :func:`default_stages`.

    This is the one place that decides a model's stages; the trainable summary, the model
    summary and the freezing strategies all start from it.

    Args:
        model: the model.

    Returns:
        ``((stage name, (module names...)), ...)``.

    Example:
        >>> stage_spec(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))
        (('0', ('0',)), ('head', ('1',)))
    """
    info = getattr(model, INFO_ATTR, None)
    return info.stages if isinstance(info, ModelInfo) else default_stages(model)


def split_into_stages(model: nn.Module, spec: Stages) -> tuple[list[Stage], list[str]]:
    """Give every parameter of ``model`` to its stage of ``spec`` (the longest module prefix).

    Args:
        model: the model.
        spec: a stage layout (:func:`stage_spec`).

    Returns:
        The stages with their parameters, and the names of parameters no stage holds.

    Raises:
        ConfigError: the layout names a module the model lacks.

    Example:
        >>> stages, left_out = split_into_stages(nn.Linear(2, 1), (("head", ("",)),))
        >>> list(stages[0].params), left_out
        (['weight', 'bias'], [])
    """
    modules = dict(model.named_modules())
    stages = []
    for name, module_names in spec:
        missing = [m for m in module_names if m not in modules]
        if missing:
            raise ConfigError(
                f"Stage {name!r} names modules the model does not have: {missing}. "
                "Fix the stages of its ModelInfo (set_model_info)."
            )
        stages.append(Stage(name, tuple(module_names), tuple(modules[m] for m in module_names), {}))
    left_out = []
    for pname, param in model.named_parameters():
        index = stage_of(pname, stages)
        if index < 0:
            left_out.append(pname)
        else:
            stages[index].params[pname] = param
    return stages, left_out


def model_stages(model: nn.Module) -> list[Stage]:
    """The ordered stages of ``model``, input side first, head last.

    Args:
        model: a model from :func:`~finetune_kit.create_model` (stages from its ModelInfo) or
            any ``nn.Module``: one stage per top-level child with parameters, named after it,
            the last one ``"head"``; children without parameters join the stage before them;
            parameters registered on the model itself form a first stage ``"root"``.

    Returns:
        The stages; every parameter of the model is in exactly one of them.

    Raises:
        ConfigError: the ModelInfo names a module the model lacks, or leaves parameters out.

    Example:
        >>> from finetune_kit.models import create_model
        >>> [s.name for s in model_stages(create_model("convnet", num_classes=10))]
        ['conv1', 'conv2', 'fc1', 'head']
    """
    stages, left_out = split_into_stages(model, stage_spec(model))
    if left_out:
        raise ConfigError(
            f"The model's stages leave out parameters {left_out[:5]}"
            f"{' ...' if len(left_out) > 5 else ''}. Add the modules holding them to a stage "
            "of its ModelInfo (set_model_info), or remove the attribute 'finetune_kit_info' to "
            "use the top-level children as stages."
        )
    return stages
