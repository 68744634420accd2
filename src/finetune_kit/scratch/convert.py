"""Swap a model's layers for their scratch versions and back, keeping the weights.

Supported: ``nn.Conv2d`` (``padding_mode="zeros"``), ``nn.Linear``, ``nn.ReLU``,
``nn.MaxPool2d`` and ``nn.AvgPool2d``, matched by exact type (a subclass may change the forward,
so it is left alone). Other layers — BatchNorm, adaptive pooling, ... — stay PyTorch's. The new
layer reuses the old layer's ``Parameter`` objects, so weights, ``requires_grad`` and any
optimizer that holds them carry over; forward/backward hooks registered on a swapped layer do not.

Example:
    >>> from torch import nn
    >>> scratch_model = convert_to_scratch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    >>> [type(m).__name__ for m in scratch_model]
    ['ScratchConv2d', 'ScratchReLU']
    >>> [type(m).__name__ for m in convert_to_torch(scratch_model)]
    ['Conv2d', 'ReLU']
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.scratch.modules import (
    ScratchAvgPool2d,
    ScratchConv2d,
    ScratchLinear,
    ScratchMaxPool2d,
    ScratchReLU,
)

__all__ = ["SCRATCH_LAYERS", "convert_to_scratch", "convert_to_torch"]


def _conv_args(m: nn.Conv2d) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }


def _linear_args(m: nn.Linear) -> dict[str, Any]:
    return {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
    }


def _relu_args(m: nn.ReLU) -> dict[str, Any]:
    return {"inplace": m.inplace}


def _max_pool_args(m: nn.MaxPool2d) -> dict[str, Any]:
    return {
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "return_indices": m.return_indices,
        "ceil_mode": m.ceil_mode,
    }


def _avg_pool_args(m: nn.AvgPool2d) -> dict[str, Any]:
    return {
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "ceil_mode": m.ceil_mode,
        "count_include_pad": m.count_include_pad,
        "divisor_override": m.divisor_override,
    }


SCRATCH_LAYERS: dict[type[nn.Module], tuple[type[nn.Module], Callable[[Any], dict[str, Any]]]] = {
    nn.Conv2d: (ScratchConv2d, _conv_args),
    nn.Linear: (ScratchLinear, _linear_args),
    nn.ReLU: (ScratchReLU, _relu_args),
    nn.MaxPool2d: (ScratchMaxPool2d, _max_pool_args),
    nn.AvgPool2d: (ScratchAvgPool2d, _avg_pool_args),
}
"""PyTorch layer type -> (scratch layer type, function reading its constructor arguments)."""

_TORCH_LAYERS = {scratch: (torch_type, args) for torch_type, (scratch, args) in SCRATCH_LAYERS.items()}


def convert_to_scratch(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every supported PyTorch layer of ``model`` with its scratch version.

    Args:
        model: any module; it may itself be a supported layer.
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The converted model (``model`` itself when ``inplace``).

    Raises:
        ConfigError: a ``Conv2d`` uses a ``padding_mode`` other than ``"zeros"``, which the
            scratch convolution does not implement.
    """
    return _convert(model, SCRATCH_LAYERS, inplace=inplace)


def convert_to_torch(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every scratch layer of ``model`` with the PyTorch layer it stands in for.

    Args:
        model: any module; it may itself be a scratch layer.
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The converted model (``model`` itself when ``inplace``).
    """
    return _convert(model, _TORCH_LAYERS, inplace=inplace)


def _convert(model: nn.Module, table: dict, *, inplace: bool) -> nn.Module:
    if not inplace:
        model = copy.deepcopy(model)
    if type(model) in table:
        return _swap(model, *table[type(model)], name="(root)")
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) in table:
                full_name = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, _swap(child, *table[type(child)], name=full_name))
    return model


def _swap(
    old: nn.Module,
    new_type: type[nn.Module],
    read_args: Callable[[Any], dict[str, Any]],
    *,
    name: str,
) -> nn.Module:
    args = read_args(old)
    if args.get("padding_mode", "zeros") != "zeros":
        raise ConfigError(
            f"layer {name!r} uses padding_mode={args['padding_mode']!r}; the scratch "
            "convolution implements 'zeros' only"
        )
    if "weight" in dict(old.named_parameters(recurse=False)):
        # Build on the meta device (no memory, no init), then adopt the old Parameters.
        new = new_type(**args, device="meta")
        new.weight = old.weight
        new.bias = old.bias
    else:
        new = new_type(**args)
    return new.train(old.training)
