"""verify_conv / run_verify: the report, its pass/fail, TF32 handling and input errors."""

from __future__ import annotations

import pytest
import torch

import finetune_kit.scratch.verify as verify_module
from finetune_kit.errors import ConfigError, DeviceError, UnknownNameError
from finetune_kit.scratch import (
    Conv2dFunction,
    ConvConfig,
    VerifyReport,
    run_verify,
    tf32_disabled,
    verify_conv,
)
from finetune_kit.scratch.verify import DEFAULT_CONFIGS, TOLERANCES


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_table_passes_on_cpu(dtype):
    report = verify_conv(dtype=dtype)
    assert isinstance(report, VerifyReport)
    assert report.passed, report.table()
    # output, grad_x, grad_weight (+ grad_bias when there is a bias) for every configuration
    expected_rows = sum(3 + c.bias for c in DEFAULT_CONFIGS)
    assert len(report.rows) == expected_rows
    assert {row.tolerance for row in report.rows} == {TOLERANCES[dtype]}
    # The float32 candidate is about as close to the float64 reference as PyTorch itself.
    for row in report.rows:
        assert row.max_rel <= max(20 * row.torch_rel, 1e-15), row


def test_table_names_configs_quantities_and_verdict():
    text = verify_conv([ConvConfig(padding="same", kernel_size=4, bias=False)]).table()
    assert "N2 C4->8 8x8 k4 s1 psame d1 g1 nobias" in text
    for word in ("output", "grad_x", "grad_weight", "TF32 off", "3 of 3 checks passed: PASS"):
        assert word in text
    assert "grad_bias" not in text


def test_a_wrong_candidate_fails(monkeypatch):
    class Broken(Conv2dFunction):
        @staticmethod
        def forward(ctx, *args):
            return Conv2dFunction.forward(ctx, *args) * (1 + 1e-4)  # a 1e-4 relative error

    monkeypatch.setattr(verify_module, "Conv2dFunction", Broken)
    report = verify_conv([ConvConfig()])
    assert not report.passed
    failed = [row.quantity for row in report.rows if not row.passed]
    assert failed == ["output"]  # the backward is still right
    assert "FAIL" in report.table()


def test_tf32_is_off_inside_and_restored_after():
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        with tf32_disabled():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before[2])
        torch.backends.cuda.matmul.allow_tf32 = before[0]
        torch.backends.cudnn.allow_tf32 = before[1]


def test_run_verify_with_model_returns_text_and_flag():
    text, passed = run_verify("cpu", model="resnet18")
    assert passed, text
    assert "resnet18" in text and "logits" in text and "param grads (62)" in text


def test_bad_arguments():
    with pytest.raises(UnknownNameError, match="resnet18"):
        verify_conv([], model="vgg11")
    with pytest.raises(ConfigError, match=r"float32 or torch\.float64"):
        verify_conv([], dtype=torch.float16)
    with pytest.raises(ConfigError, match="float32, float64"):
        run_verify(dtype="half")
    with pytest.raises(DeviceError, match="unknown device"):
        verify_conv([], device="gpu0")


def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        run_verify("cuda")


@pytest.mark.cuda
def test_against_cudnn():
    for dtype in (torch.float32, torch.float64):
        report = verify_conv(device="cuda", dtype=dtype, model="resnet18")
        assert report.passed, report.table()
