"""Shared pieces of the scratch tests: a tolerance check and random convolution cases."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

# Tolerances of issue 8: max-norm relative error against a PyTorch float64 reference.
REL_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def assert_rel_close(
    actual: Tensor, expected: Tensor, rel: float, what: str = "", scale: Tensor | None = None
) -> None:
    """Assert ``max|actual - expected| <= rel * max|scale|`` (shapes must match).

    ``scale`` defaults to ``expected``. For a sum, pass the same sum over the absolute values of
    its terms (see :func:`conv_magnitudes`): rounding errors scale with that, not with a result
    that cancellation may have made tiny.
    """
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    expected = expected.double()
    scale = expected if scale is None else scale
    scale = scale.abs().max().item() if scale.numel() else 0.0
    torch.testing.assert_close(
        actual.double(),
        expected,
        rtol=0.0,
        atol=rel * max(scale, 1e-300),
        msg=lambda m: f"{what}: {m}",
    )


@dataclass(frozen=True)
class ConvCase:
    """One random convolution: shapes and the arguments of F.conv2d."""

    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    stride: int | tuple[int, int]
    padding: int | tuple[int, int] | str
    dilation: int | tuple[int, int]
    groups: int
    bias: bool

    @property
    def args(self) -> dict:
        """Keyword arguments for conv2d-like functions."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    def tensors(self, seed: int = 0, dtype: torch.dtype = torch.float64):
        """``(x, weight, bias or None)`` drawn from a seeded generator."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(self.batch, self.in_channels, *self.size, generator=gen, dtype=dtype)
        w = torch.randn(
            self.out_channels,
            self.in_channels // self.groups,
            *self.kernel,
            generator=gen,
            dtype=dtype,
        )
        b = torch.randn(self.out_channels, generator=gen, dtype=dtype) if self.bias else None
        return x, w, b


def _pair_or_int(values: st.SearchStrategy[int]) -> st.SearchStrategy:
    return st.one_of(values, st.tuples(values, values))


def _as_pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


@st.composite
def conv_cases(draw, max_extra: int = 5) -> ConvCase:
    """Random small convolutions: groups dividing the channels, kernels 1..3 (non-square too),
    strides 1..3 (so larger than a 1x1 or 2x2 kernel), dilation 1..2, padding 0, ints, pairs,
    "same" (stride 1) or "valid", and input sizes from the smallest that fits upwards."""
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = draw(_pair_or_int(st.integers(1, 2)))
    kind = draw(st.sampled_from(["zero", "int", "pair", "same", "valid"]))
    stride = 1 if kind == "same" else draw(_pair_or_int(st.integers(1, 3)))
    padding = {
        "zero": 0,
        "same": "same",
        "valid": "valid",
        "int": draw(st.integers(0, 2)),
        "pair": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
    }[kind]
    pad = (0, 0) if isinstance(padding, str) else _as_pair(padding)
    if kind == "same":
        pad = (0, 0)  # "same" always fits
    size = []
    for k, d, p in zip(kernel, _as_pair(dilation), pad, strict=True):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        size.append(smallest + draw(st.integers(0, max_extra)))
    return ConvCase(
        batch=draw(st.integers(1, 2)),
        in_channels=in_channels,
        out_channels=out_channels,
        size=tuple(size),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
    )


def torch_conv_grads(case: ConvCase, x: Tensor, w: Tensor, b: Tensor | None, grad_out=None):
    """PyTorch's conv2d and its autograd gradients: ``(out, grad_out, gx, gw, gb)``."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    out = torch.nn.functional.conv2d(*leaves, **case.args)
    if grad_out is None:
        gen = torch.Generator().manual_seed(123)
        grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)
    out.backward(grad_out.to(out.dtype))
    gb = leaves[2].grad if b is not None else None
    return out.detach(), grad_out, leaves[0].grad, leaves[1].grad, gb


def conv_magnitudes(case: ConvCase, x: Tensor, w: Tensor, b: Tensor | None, grad_out: Tensor):
    """PyTorch's conv2d forward and backward on absolute values: ``(out, gx, gw, gb)``.

    Each element is the sum of the magnitudes of the terms that make up the same element of the
    real computation: the scale that bounds its rounding error.
    """
    absolute_b = b.abs() if b is not None else None
    out, _, gx, gw, gb = torch_conv_grads(case, x.abs(), w.abs(), absolute_b, grad_out.abs())
    return out, gx, gw, gb
