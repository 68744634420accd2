"""Top losses: the k highest-loss samples of a loader, against a brute-force ranking."""

from __future__ import annotations

import pytest
import torch

from finetune_kit.analysis.top_losses import top_losses
from finetune_kit.data import DeviceLoader, ImageTensorDataset
from finetune_kit.errors import ConfigError


def test_top_losses_matches_a_brute_force_ranking():
    gen = torch.Generator().manual_seed(0)
    ds = ImageTensorDataset(
        torch.randint(0, 256, (23, 1, 6, 6), dtype=torch.uint8, generator=gen),
        torch.randint(0, 3, (23,), generator=gen),
        ["a", "b", "c"],
    )
    loader = DeviceLoader(ds, batch_size=5, mean=(0.5,), std=(0.25,))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(36, 3))
    net.train()
    worst = top_losses(net, loader, k=4)
    assert net.training  # mode restored
    x = torch.cat([b for b, _ in loader.iter_epoch(0)])
    net.eval()
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(net(x), ds.targets, reduction="none")
    expected = losses.topk(4).indices
    assert worst.positions.tolist() == expected.tolist()
    torch.testing.assert_close(worst.losses, losses[expected])
    assert torch.equal(worst.images, x[expected])
    assert torch.equal(worst.targets, ds.targets[expected])
    assert len(top_losses(net, loader, k=100)) == 23
    titles = worst.titles(["a", "b", "c"])
    assert len(titles) == 4 and titles[0].startswith("true: ")
    with pytest.raises(ConfigError):
        top_losses(net, loader, k=0)
