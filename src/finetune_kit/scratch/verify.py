"""Check the scratch layers against PyTorch's own (cuDNN on the GPU, oneDNN on the CPU).

For every configuration in a table, the same random input, weights and output gradient go
through three convolutions:

* the **reference**: PyTorch's convolution in float64, with autograd;
* the **candidate**: :class:`~finetune_kit.scratch.Conv2dFunction` (im2col forward, hand-written
  backward) at the dtype under test;
* PyTorch's convolution at the dtype under test, for scale: the candidate should be about as
  close to the reference as PyTorch itself is.

The error of a tensor is ``max|candidate - reference|`` (absolute), and that divided by a
scale (relative). Every output and gradient element of a convolution is a sum of products, and
the rounding error of a sum is bounded by the sum of the magnitudes of its terms
(``|fl(sum a_i) - sum a_i| <= n * eps * sum |a_i|``), not by the size of the result, which can
be tiny when the terms cancel (a bias gradient that adds 126 numbers of size 1 and gets 0.06).
So the scale of a layer's tensor is ``max`` of the same computation on absolute values: the
reference run again on ``|x|``, ``|w|``, ``|b|`` and ``|grad_out|``. For a whole model, which
is not one sum, the scale is ``max|reference|``.

TF32 is switched off for the whole comparison (see :func:`tf32_disabled`): with TF32 on,
cuDNN and cuBLAS round float32 inputs to a 10-bit mantissa, and a float32 comparison against a
float64 reference fails at about 1e-3 (pytorch/pytorch#107514).

Example:
    >>> report = verify_conv([ConvConfig(batch=1, in_channels=2, out_channels=2, size=(5, 5))],
    ...                      dtype=torch.float64)
    >>> report.passed, len(report.rows)
    (True, 4)
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finetune_kit.errors import ConfigError, DeviceError, UnknownNameError
from finetune_kit.scratch._args import IntPair, PaddingArg, conv_geometry
from finetune_kit.scratch.convert import convert_to_scratch
from finetune_kit.scratch.functions import Conv2dFunction
from finetune_kit.scratch.verify_report import VerifyReport, VerifyRow, tf32_disabled

__all__ = [
    "DEFAULT_CONFIGS",
    "MODELS",
    "MODEL_TOLERANCES",
    "TOLERANCES",
    "ConvConfig",
    "run_verify",
    "verify_conv",
]

TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-5}
"""Largest allowed max-norm relative error of one layer's output and gradients, per dtype."""

MODEL_TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-4}
"""The same for a whole converted model, whose rounding errors add up over its depth."""

MODELS: tuple[str, ...] = ("resnet18",)
"""Models :func:`verify_conv` can build and convert (torchvision, random weights)."""


@dataclass(frozen=True)
class ConvConfig:
    """One convolution to check: the shapes and the arguments of ``F.conv2d``."""

    batch: int = 2
    in_channels: int = 4
    out_channels: int = 8
    size: tuple[int, int] = (8, 8)
    kernel_size: IntPair = 3
    stride: IntPair = 1
    padding: PaddingArg = 0
    dilation: IntPair = 1
    groups: int = 1
    bias: bool = True

    @property
    def label(self) -> str:
        """A short description, e.g. ``"N2 C4->8 8x8 k3 s1 p1 d1 g1"``."""

        def fmt(v: object) -> str:
            return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

        text = (
            f"N{self.batch} C{self.in_channels}->{self.out_channels} {fmt(self.size)} "
            f"k{fmt(self.kernel_size)} s{fmt(self.stride)} p{fmt(self.padding)} "
            f"d{fmt(self.dilation)} g{self.groups}"
        )
        return text if self.bias else text + " nobias"


DEFAULT_CONFIGS: tuple[ConvConfig, ...] = (
    ConvConfig(padding=1),
    ConvConfig(in_channels=3, out_channels=5, size=(7, 9), kernel_size=4, padding="same"),
    ConvConfig(size=(9, 6), padding="valid"),
    ConvConfig(size=(9, 9), stride=2, padding=1),
    ConvConfig(size=(10, 8), kernel_size=2, stride=3),  # stride larger than the kernel
    ConvConfig(in_channels=8, out_channels=16, kernel_size=1),  # 1x1
    ConvConfig(size=(9, 9), dilation=2, padding=2),
    ConvConfig(in_channels=4, out_channels=6, groups=2, padding=1),
    ConvConfig(in_channels=6, out_channels=6, groups=6, padding=1),  # depthwise
    ConvConfig(size=(6, 11), kernel_size=(1, 3), stride=(2, 1), padding=(0, 1)),
    ConvConfig(
        in_channels=3, out_channels=8, size=(16, 16), kernel_size=7, stride=2, padding=3
    ),  # a ResNet stem
    ConvConfig(in_channels=16, out_channels=16, size=(6, 6), padding=1, bias=False),
)
"""The configurations :func:`verify_conv` checks when given none."""


def verify_conv(
    configs: Sequence[ConvConfig] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    model: str | nn.Module | None = None,
    seed: int = 0,
    image_size: int | tuple[int, int] = 64,
    in_channels: int = 3,
) -> VerifyReport:
    """Compare the scratch convolution (and optionally a converted model) with PyTorch's.

    Args:
        configs: the convolutions to check; ``None`` means :data:`DEFAULT_CONFIGS`, and an
            empty sequence checks only the model.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: the dtype under test, ``torch.float32`` or ``torch.float64``.
        model: also check a whole model converted with
            :func:`~finetune_kit.scratch.convert_to_scratch`: logits, input gradient and every
            parameter gradient, in train mode. A model (any ``nn.Module``; ``finetune-kit
            verify-conv --model NAME`` builds one from the registry) or one of :data:`MODELS`.
        seed: seeds the random tensors and the model's initialisation.
        image_size: height and width of the model's input batch ``(2, C, H, W)``.
        in_channels: channels of that batch.

    Returns:
        A :class:`VerifyReport`; ``report.passed`` tells whether every error is within
        :data:`TOLERANCES` (:data:`MODEL_TOLERANCES` for the model).

    Raises:
        DeviceError: ``device`` is a CUDA device and CUDA is not available.
        ConfigError: an unsupported ``dtype``.
        UnknownNameError: an unknown ``model``.
    """
    device = _check_device(device)
    if dtype not in TOLERANCES:
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if isinstance(model, str) and model not in MODELS:
        raise UnknownNameError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    rows: list[VerifyRow] = []
    generator = torch.Generator().manual_seed(seed)
    with tf32_disabled(), warnings.catch_warnings():
        # PyTorch warns that padding="same" with an even kernel copies the input: expected here.
        warnings.filterwarnings("ignore", message="Using padding='same'")
        for config in DEFAULT_CONFIGS if configs is None else configs:
            rows += _check_config(config, device, dtype, generator)
        if model is not None:
            size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
            rows += _check_model(model, device, dtype, seed, (in_channels, *size))
    return VerifyReport(tuple(rows), str(device), dtype, _notes(device))


def run_verify(
    device: str = "cpu",
    model: str | nn.Module | None = None,
    dtype: str = "float32",
    image_size: int | tuple[int, int] = 64,
    in_channels: int = 3,
) -> tuple[str, bool]:
    """Run :func:`verify_conv` for the ``finetune-kit verify-conv`` command.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
        model: ``None``, a model, or one of :data:`MODELS`, to check a whole converted model too.
        dtype: ``"float32"`` or ``"float64"``.
        image_size: the model's input height and width.
        in_channels: the model's input channels.

    Returns:
        ``(text, passed)``: the report's table to print, and whether every check passed.

    Raises:
        DeviceError: CUDA requested but not available.
        ConfigError: an unknown dtype name.
        UnknownNameError: an unknown model name.
    """
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in dtypes:
        raise ConfigError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    report = verify_conv(
        device=device, dtype=dtypes[dtype], model=model, image_size=image_size, in_channels=in_channels
    )
    return report.table(), report.passed


def _check_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise DeviceError(f"unknown device {str(device)!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {str(device)!r} was requested but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use --device cpu"
        )
    return device


def _notes(device: torch.device) -> tuple[str, ...]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (f"torch {torch.__version__}, {name}",)


def _run_conv(
    conv: Callable[..., Tensor],
    tensors: Sequence[Tensor | None],
    grad_out: Tensor,
    config: ConvConfig,
) -> list[Tensor]:
    """Forward and backward of one convolution: ``[output, grad_x, grad_weight, grad_bias]``."""
    leaves = [t.detach().requires_grad_() if t is not None else None for t in tensors]
    out = conv(*leaves, config.stride, config.padding, config.dilation, config.groups)
    out.backward(grad_out.to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves if t is not None]


def _check_config(
    config: ConvConfig, device: torch.device, dtype: torch.dtype, generator: torch.Generator
) -> list[VerifyRow]:
    c_in, c_out, g = config.in_channels, config.out_channels, config.groups
    kernel = config.kernel_size if isinstance(config.kernel_size, tuple) else (config.kernel_size,) * 2

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device)

    x = rand(config.batch, c_in, *config.size)
    weight = rand(c_out, c_in // g, *kernel)
    bias = rand(c_out) if config.bias else None
    geo = conv_geometry(
        x.shape,
        weight.shape,
        stride=config.stride,
        padding=config.padding,
        dilation=config.dilation,
        groups=g,
    )
    grad_out = rand(config.batch, c_out, *geo.out_size)
    low = [t.to(dtype) if t is not None else None for t in (x, weight, bias)]
    reference = _run_conv(F.conv2d, [x, weight, bias], grad_out, config)
    absolute = [t.abs() if t is not None else None for t in (x, weight, bias)]
    magnitude = _run_conv(F.conv2d, absolute, grad_out.abs(), config)  # sum |terms| per element
    pytorch = _run_conv(F.conv2d, low, grad_out, config)
    scratch = _run_conv(Conv2dFunction.apply, low, grad_out, config)
    names = ["output", "grad_x", "grad_weight", "grad_bias"][: len(reference)]
    return [
        _row(config.label, name, s, p, r, TOLERANCES[dtype], scale=m)
        for name, s, p, r, m in zip(names, scratch, pytorch, reference, magnitude, strict=True)
    ]


def _row(
    case: str,
    quantity: str,
    scratch: Tensor,
    pytorch: Tensor,
    reference: Tensor,
    tolerance: float,
    scale: Tensor | None = None,
) -> VerifyRow:
    max_abs, max_rel = _errors(scratch, reference, scale)
    torch_rel = _errors(pytorch, reference, scale)[1]
    return VerifyRow(case, quantity, max_abs, max_rel, torch_rel, tolerance)


def _errors(candidate: Tensor, reference: Tensor, scale: Tensor | None = None) -> tuple[float, float]:
    """``(max|candidate - reference|, that / max|scale|)``; the scale defaults to the reference."""
    max_abs = (candidate.double() - reference).abs().max().item()
    largest = (reference if scale is None else scale).abs().max().item()
    return max_abs, max_abs / largest if largest > 0 else max_abs


def _check_model(
    model: str | nn.Module, device: torch.device, dtype: torch.dtype, seed: int, shape: tuple[int, ...]
) -> list[VerifyRow]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, str):
            import torchvision  # only needed here; a heavy import

            name, original = model, getattr(torchvision.models, model)(weights=None)
        else:
            name, original = type(model).__name__, model
        x = torch.randn(2, *shape, dtype=torch.float64)
        with torch.no_grad():
            outputs = copy.deepcopy(original).double().eval()(x).shape[1]
        mix = torch.randn(2, outputs, dtype=torch.float64)  # loss = sum(logits * mix)
    x, mix = x.to(device), mix.to(device)
    results = {}
    for label, module, run_dtype in (
        ("reference", original, torch.float64),
        ("pytorch", original, dtype),
        ("scratch", convert_to_scratch(original), dtype),
    ):
        results[label] = _model_grads(copy.deepcopy(module).to(device, run_dtype), x, mix)
    tolerance = MODEL_TOLERANCES[dtype]
    rows = [
        _row(
            name,
            quantity,
            results["scratch"][quantity],
            results["pytorch"][quantity],
            results["reference"][quantity],
            tolerance,
        )
        for quantity in ("logits", "grad_x")
    ]
    return [*rows, _worst_parameter(name, results, tolerance)]


def _model_grads(model: nn.Module, x: Tensor, mix: Tensor) -> dict[str, Tensor]:
    model.train()
    for module in model.modules():  # dropout draws random masks: the three runs must agree
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()
    leaf = x.detach().to(next(model.parameters()).dtype).requires_grad_()
    logits = model(leaf)
    (logits * mix.to(logits.dtype)).sum().backward()
    grads = {f"grad {n}": p.grad for n, p in model.named_parameters()}
    return {"logits": logits.detach(), "grad_x": leaf.grad, **grads}


def _worst_parameter(case: str, results: dict[str, dict[str, Tensor]], tolerance: float) -> VerifyRow:
    """One row for all parameter gradients: the largest errors over the parameters."""
    reference, scratch, pytorch = results["reference"], results["scratch"], results["pytorch"]
    keys = [k for k in reference if k.startswith("grad ")]
    errors = {k: _errors(scratch[k], reference[k]) for k in keys}
    worst = max(keys, key=lambda k: errors[k][1])
    torch_rel = max(_errors(pytorch[k], reference[k])[1] for k in keys)
    return VerifyRow(
        case,
        f"param grads ({len(keys)})",
        max(e[0] for e in errors.values()),
        errors[worst][1],
        torch_rel,
        tolerance,
        detail=f"worst: {worst[5:]}",
    )
