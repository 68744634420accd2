"""Tiny data every inference test trains on: three classes of gray images told apart by brightness."""

from __future__ import annotations

import torch

import finetune_kit as fk

CLASSES = ["cat", "dog", "frog"]


def brightness_data(n_train=96, n_test=30, seed=0):
    """Class k is a 16x16 gray image of brightness 40 + 80k plus noise: learnt in a few steps."""
    gen = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.arange(n) % 3
        x = (40 + 80 * y).view(n, 1, 1, 1).float() + torch.randint(-20, 21, (n, 1, 16, 16), generator=gen)
        return x.clamp(0, 255).to(torch.uint8), y

    return fk.create_datasets(
        "tensors", train=make(n_train), test=make(n_test), class_names=CLASSES, val_fraction=0.0
    )
