"""Devices, precision and seeding."""

from __future__ import annotations

import pytest
import torch

import finetune_kit.runtime.precision as precision
from finetune_kit.errors import DeviceError
from finetune_kit.runtime import PrecisionMode, resolve_device, seed_everything


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_missing_gpu_is_a_clear_error(name):
    with pytest.raises(DeviceError, match="no CUDA GPU is available.*device='cpu'"):
        resolve_device(name)


def test_unknown_device():
    with pytest.raises(DeviceError, match="Unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_precisions_on_cpu():
    cpu = torch.device("cpu")
    assert PrecisionMode.resolve("32", cpu).autocast_dtype is None
    bf16 = PrecisionMode.resolve("bf16-mixed", cpu)
    assert bf16.autocast_dtype is torch.bfloat16 and not bf16.use_scaler
    with bf16.autocast(cpu):
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype is torch.bfloat16
    fp16 = PrecisionMode.resolve("16-mixed", cpu)
    assert fp16.autocast_dtype is torch.float16 and not fp16.use_scaler
    with pytest.raises(DeviceError, match="Unknown precision"):
        PrecisionMode.resolve("8", cpu)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(native, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    mode = PrecisionMode.resolve("auto", cpu)
    assert (mode.name, mode.requested) == (("bf16-mixed" if native else "32"), "auto")
    assert mode.autocast_dtype is (torch.bfloat16 if native else None)
    assert PrecisionMode.resolve("32", cpu).requested == "32"


def test_native_bf16_probes_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert precision.native_bf16(cpu)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not precision.native_bf16(cpu)
    assert not precision.native_bf16(torch.device("meta"))


def test_seed_everything_is_repeatable():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
