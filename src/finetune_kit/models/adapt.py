"""Fit a (pretrained) model to other inputs, keeping its first filters instead of discarding them.

Two rules, both applied to the model's *input convolution* (its first ``nn.Conv2d``):

**Input channels** (:func:`adapt_channels`). A kernel ``w: (O, C, kh, kw)`` taking ``C``
channels becomes one taking ``N``:

* ``N == 1``: sum over the ``C`` input channels. A gray image fed to the adapted conv gives
  exactly what the same image replicated to ``C`` channels gives through the original.
* otherwise: repeat the ``C`` channel slices cyclically to ``N`` (RGB -> RGBRGB...) and scale by
  ``C / N``, so an input whose channels are alike keeps the activation scale of the original.

**Small-input stem** (:func:`adapt_small_input`, ResNets). The 7x7 stride-2 ``conv1`` becomes
a 3x3 stride-1 conv (padding 1) and the max-pool is removed, so 32-pixel images are not shrunk
to 8 pixels before ``layer1``. The 3x3 kernel is resampled from the 7x7 one
(:func:`resample_kernel`): lay a 3x3 grid over the 7x7 kernel so that both span the same square;
each new tap is the sum of the old taps under its cell, split by area where a tap straddles two
cells. The kernel keeps its pattern (orientation, colour contrast) at a smaller scale and its
total sum, i.e. its response to a flat image, is unchanged.

Example:
    >>> import torch
    >>> w = torch.randn(4, 3, 7, 7, dtype=torch.float64)
    >>> bool(torch.allclose(resample_kernel(w, (3, 3)).sum((2, 3)), w.sum((2, 3))))
    True
    >>> adapt_channels(w, 1).shape
    torch.Size([4, 1, 7, 7])
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet

from finetune_kit.errors import ConfigError, ShapeError
from finetune_kit.models._checks import check_in_channels
from finetune_kit.models._surgery import set_submodule
from finetune_kit.models.info import INFO_ATTR, ModelInfo, adapt_stats, update_model_info

__all__ = [
    "adapt_channels",
    "adapt_input_channels",
    "adapt_input_conv_weight",
    "adapt_small_input",
    "find_input_conv",
    "resample_kernel",
]


def adapt_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Carry a conv kernel over to ``in_channels`` input channels (rule in the module doc).

    Args:
        weight: ``(O, C, kh, kw)`` kernel.
        in_channels: the new input channel count ``N``.

    Returns:
        ``(O, N, kh, kw)`` kernel (a new tensor).

    Raises:
        ConfigError: ``in_channels`` < 1.

    Example:
        >>> w = torch.ones(1, 3, 1, 1)
        >>> adapt_channels(w, 1).flatten().tolist(), adapt_channels(w, 2).flatten().tolist()
        ([3.0], [1.5, 1.5])
    """
    check_in_channels(in_channels)
    channels = weight.shape[1]
    if in_channels == channels:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // channels)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (channels / in_channels)


def _area_matrix(src: int, dst: int) -> torch.Tensor:
    """``(dst, src)`` matrix: row i holds how much of each source tap falls in target cell i."""
    scale = src / dst
    rows = []
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        rows.append([max(0.0, min(hi, j + 1) - max(lo, j)) for j in range(src)])
    return torch.tensor(rows, dtype=torch.float64)


def resample_kernel(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a conv kernel to ``size`` taps, preserving each filter's sum (rule in module doc).

    Args:
        weight: ``(O, C, kh, kw)`` kernel.
        size: the new ``(kh', kw')``.

    Returns:
        ``(O, C, kh', kw')`` kernel in ``weight``'s dtype.

    Example:
        >>> resample_kernel(torch.ones(1, 1, 7, 7), (3, 3))[0, 0]
        tensor([[5.4444, 5.4444, 5.4444],
                [5.4444, 5.4444, 5.4444],
                [5.4444, 5.4444, 5.4444]])
    """
    rows = _area_matrix(weight.shape[2], size[0]).to(weight.device)
    cols = _area_matrix(weight.shape[3], size[1]).to(weight.device)
    resampled = rows @ weight.to(torch.float64) @ cols.T
    return resampled.to(weight.dtype)


def adapt_input_conv_weight(weight: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Fit a pretrained input-conv kernel to the model's kernel ``shape`` (both rules).

    Args:
        weight: the pretrained ``(O, C, kh, kw)`` kernel.
        shape: the model's ``(O, N, kh', kw')``; ``O`` must match.

    Returns:
        The adapted kernel of ``shape``.

    Raises:
        ShapeError: not 4-D kernels, or the output channels differ.

    Example:
        >>> adapt_input_conv_weight(torch.randn(64, 3, 7, 7), (64, 1, 3, 3)).shape
        torch.Size([64, 1, 3, 3])
    """
    shape = tuple(shape)
    if weight.dim() != 4 or len(shape) != 4 or weight.shape[0] != shape[0]:
        raise ShapeError(
            f"Cannot adapt an input-conv kernel of shape {tuple(weight.shape)} to {shape}: "
            "both must be (out, in, kh, kw) with the same number of output channels."
        )
    if tuple(weight.shape[2:]) != shape[2:]:
        weight = resample_kernel(weight, shape[2:])
    return adapt_channels(weight, shape[1])


def find_input_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The model's input convolution: its first ``nn.Conv2d`` in registration order.

    Args:
        model: the model.

    Returns:
        ``(qualified name, conv)``, e.g. ``("conv1", Conv2d(3, 64, ...))``.

    Raises:
        ShapeError: the model has no ``nn.Conv2d``.

    Example:
        >>> import torchvision
        >>> find_input_conv(torchvision.models.efficientnet_b0())[0]
        'features.0.0'
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ShapeError(f"{type(model).__name__} has no nn.Conv2d, so it has no input convolution.")


def _rebuilt_conv(conv: nn.Conv2d, weight: torch.Tensor, **changes: object) -> nn.Conv2d:
    """A copy of ``conv`` with ``changes`` to its constructor arguments and the given weight."""
    args = {
        "in_channels": weight.shape[1],
        "out_channels": conv.out_channels,
        "kernel_size": tuple(weight.shape[2:]),
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
        **changes,
    }
    new = torch.nn.utils.skip_init(nn.Conv2d, device=conv.weight.device, dtype=conv.weight.dtype, **args)
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.train(conv.training)
    return new


def adapt_input_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """Make the model take ``in_channels`` input channels, keeping its first filters.

    The input conv is replaced by one whose kernel follows the channel rule of this module
    (1 channel: sum the kernels over the input channels; ``N``: repeat cyclically and scale by
    ``C / N``); its bias is kept. The ModelInfo, if any, gets the new ``in_channels`` and its
    mean/std are carried over the same way (1 channel: their average).

    Args:
        model: the model, changed in place.
        in_channels: the new input channel count.

    Returns:
        ``model`` itself.

    Raises:
        ConfigError: ``in_channels`` < 1.
        ShapeError: the model has no Conv2d, or its input conv is grouped.

    Example:
        >>> import torchvision
        >>> net = adapt_input_channels(torchvision.models.resnet18(), 1)
        >>> net.conv1.weight.shape
        torch.Size([64, 1, 7, 7])
    """
    check_in_channels(in_channels)
    name, conv = find_input_conv(model)
    if conv.groups != 1:
        raise ShapeError(f"The input conv {name!r} is grouped (groups={conv.groups}); cannot adapt it.")
    if conv.in_channels != in_channels:
        weight = adapt_channels(conv.weight.detach(), in_channels)
        set_submodule(model, name, _rebuilt_conv(conv, weight))
    info = getattr(model, INFO_ATTR, None)
    if isinstance(info, ModelInfo):
        update_model_info(
            model,
            in_channels=in_channels,
            mean=adapt_stats(info.mean, in_channels),
            std=adapt_stats(info.std, in_channels),
            build_kwargs={"in_channels": in_channels},
        )
    return model


def adapt_small_input(model: nn.Module) -> nn.Module:
    """Give a ResNet a 32-pixel stem: 3x3 stride-1 ``conv1``, no max-pool (rule in module doc).

    ``conv1``'s kernel is resampled from the existing one (7x7 -> 3x3, sums preserved), so a
    pretrained stem is kept in spirit rather than thrown away. Applying it twice changes nothing.

    Args:
        model: a torchvision ``ResNet`` (resnet18 ... wide_resnet50_2), changed in place.

    Returns:
        ``model`` itself.

    Raises:
        ConfigError: the model is not a torchvision ResNet.

    Example:
        >>> import torchvision
        >>> net = adapt_small_input(torchvision.models.resnet18())
        >>> net.conv1.kernel_size, net.conv1.stride, type(net.maxpool).__name__
        ((3, 3), (1, 1), 'Identity')
    """
    if not isinstance(model, ResNet):
        raise ConfigError(
            f"adapt_small_input applies to torchvision ResNets; got {type(model).__name__}. "
            "MobileNet, EfficientNet and VGG run on 32-pixel inputs as they are."
        )
    conv = model.conv1
    weight = resample_kernel(conv.weight.detach(), (3, 3))
    model.conv1 = _rebuilt_conv(conv, weight, stride=(1, 1), padding=(1, 1))
    model.maxpool = nn.Identity()
    update_model_info(model, input_size=(32, 32), build_kwargs={"small_input": True})
    return model
