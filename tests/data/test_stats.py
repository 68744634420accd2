"""Per-channel statistics are exact float64 values of x / 255."""

from __future__ import annotations

import torch

from finetune_kit.data.stats import channel_stats


def test_matches_float64_reference() -> None:
    x = torch.randint(0, 256, (300, 3, 7, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(x)
    ref = x.to(torch.float64) / 255
    assert torch.allclose(
        torch.tensor(mean, dtype=torch.float64), ref.mean(dim=(0, 2, 3)), rtol=0, atol=1e-12
    )
    expected_std = ref.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, correction=0)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), expected_std, rtol=0, atol=1e-12)


def test_chunking_does_not_change_result(monkeypatch) -> None:
    import finetune_kit.data.stats as stats

    x = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    whole = channel_stats(x)
    monkeypatch.setattr(stats, "_CHUNK", 7)
    assert channel_stats(x) == whole
