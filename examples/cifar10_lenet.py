"""The basics of a CNN: LeNet-5 trained from scratch on CIFAR-10.

The recipe of PyTorch's "Training a classifier" tutorial: LeNet (conv 5x5 6, max-pool, conv 5x5
16, max-pool, fc 120, fc 84, fc 10), cross-entropy, SGD with lr 0.001 and momentum 0.9, batch 4,
2 epochs, no augmentation. Two differences from the tutorial: the inputs are normalised with the
training split's own per-channel mean and standard deviation (the tutorial uses 0.5 and 0.5),
and 10% of the training images are held out for validation.

Needs (without ``--smoke``): CIFAR-10, looked for in ``--data-root``, ``$FINETUNE_KIT_DATA``,
``~/.cache/finetune_kit`` and the system data folders, and downloaded (170 MB, checksummed) when
found nowhere. LeNet is small: a CPU trains it in minutes.

Usage::

    python examples/cifar10_lenet.py
    python examples/cifar10_lenet.py --batch-size 64 --lr 0.01 --epochs 10   # a faster recipe
    python examples/cifar10_lenet.py --smoke         # fake 32x32 data: seconds

The same recipe from a config file: ``finetune-kit train --config examples/configs/cifar10_lenet.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _script import example_parser, fit_and_report, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "cifar10_lenet"


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=2)
    parser.add_argument("--batch-size", type=int, default=4, help="default 4")
    parser.add_argument("--lr", type=float, default=0.001, help="default 0.001")
    args = parser.parse_args(argv)

    if args.smoke:
        data = smoke_data(in_channels=3, image_size=32)
    else:
        data = fk.create_datasets("cifar10", root=args.data_root, val_fraction=0.1, seed=0)
    model = fk.create_model("lenet", num_classes=data.num_classes, in_channels=data.in_channels, seed=0)
    print(model)

    trainer = fk.Trainer(
        model,
        data,
        batch_size=args.batch_size,
        optimizer="sgd",
        lr=args.lr,
        momentum=0.9,
        weight_decay=0.0,
        scheduler="constant",
        augment=False,  # the tutorial trains without augmentation
        seed=0,
        **trainer_options(args, NAME),
    )
    return fit_and_report(trainer, args)


if __name__ == "__main__":
    sys.exit(run(main))
