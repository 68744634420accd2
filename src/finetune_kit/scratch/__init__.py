"""Convolution from scratch: loops, im2col and a hand-written backward, checked against PyTorch.

The package teaches what a convolution is and proves its teaching code right:

* :func:`conv2d_naive` — explicit loops that read like the formula;
* :func:`conv2d` — im2col plus one matrix product per group;
* :func:`conv2d_backward_naive`, :func:`conv2d_backward` (col2im), :func:`conv2d_input_grad`
  (full convolution with flipped kernels) and :func:`conv2d_weight_grad` (correlation) — the
  backward pass by hand;
* :class:`Conv2dFunction` and :class:`ScratchConv2d` — the same, plugged into autograd and
  ``nn.Module``; the other layers of a basic CNN likewise (pooling, ReLU, linear);
* :func:`convert_to_scratch` / :func:`convert_to_torch` — swap a model's layers;
* :func:`verify_conv` — compare everything with PyTorch's layers (cuDNN on the GPU) in float64.

It depends only on torch. See the tutorial "Convolution from scratch" in the docs.

Example:
    >>> import torch
    >>> from finetune_kit import scratch
    >>> x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    >>> torch.allclose(scratch.conv2d(x, w, padding=1),
    ...                torch.nn.functional.conv2d(x, w, padding=1), atol=1e-5)
    True
"""

from __future__ import annotations

from finetune_kit.scratch.conv_backward import (
    conv2d_backward,
    conv2d_backward_naive,
    conv2d_input_grad,
    conv2d_weight_grad,
)
from finetune_kit.scratch.conv_im2col import col2im, conv2d, im2col
from finetune_kit.scratch.conv_naive import conv2d_naive
from finetune_kit.scratch.convert import convert_to_scratch, convert_to_torch
from finetune_kit.scratch.functions import (
    AvgPool2dFunction,
    Conv2dFunction,
    LinearFunction,
    MaxPool2dFunction,
    ReLUFunction,
)
from finetune_kit.scratch.layers import (
    avg_pool2d,
    avg_pool2d_backward,
    linear,
    linear_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)
from finetune_kit.scratch.modules import (
    ScratchAvgPool2d,
    ScratchConv2d,
    ScratchLinear,
    ScratchMaxPool2d,
    ScratchReLU,
)
from finetune_kit.scratch.verify import ConvConfig, run_verify, verify_conv
from finetune_kit.scratch.verify_report import VerifyReport, VerifyRow, tf32_disabled

__all__ = [
    "AvgPool2dFunction",
    "Conv2dFunction",
    "ConvConfig",
    "LinearFunction",
    "MaxPool2dFunction",
    "ReLUFunction",
    "ScratchAvgPool2d",
    "ScratchConv2d",
    "ScratchLinear",
    "ScratchMaxPool2d",
    "ScratchReLU",
    "VerifyReport",
    "VerifyRow",
    "avg_pool2d",
    "avg_pool2d_backward",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_naive",
    "conv2d_input_grad",
    "conv2d_naive",
    "conv2d_weight_grad",
    "convert_to_scratch",
    "convert_to_torch",
    "im2col",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "run_verify",
    "tf32_disabled",
    "verify_conv",
]
