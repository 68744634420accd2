"""Train the classic MNIST ConvNet on MNIST with SGD (lr 0.01, momentum 0.9).

The recipe: the ConvNet of the Keras and PyTorch MNIST examples (conv 3x3 32, conv 3x3 64,
max-pool, dropout 0.25, fc 128, dropout 0.5, fc 10), trained from scratch with SGD at lr 0.01
and momentum 0.9, batch 64, 10 epochs, no weight decay, no augmentation (the ``mnist`` preset
only normalises: digits are not mirror-symmetric, so no flips), 10% of the training set held out
for validation.

Needs (without ``--smoke``): MNIST, looked for in ``--data-root``, ``$FINETUNE_KIT_DATA``,
``~/.cache/finetune_kit`` and the system data folders, and downloaded (11 MB, checksummed) when
found nowhere.

Usage::

    python examples/mnist_convnet.py                 # minutes on a GPU, longer on a CPU
    python examples/mnist_convnet.py --smoke         # fake 28x28 data: seconds

The same recipe from a config file: ``finetune-kit train --config examples/configs/mnist_convnet.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _script import example_parser, fit_and_report, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "mnist_convnet"


def main(argv: Sequence[str] | None = None) -> int:
    args = example_parser(__doc__.splitlines()[0], epochs=10).parse_args(argv)

    if args.smoke:
        data = smoke_data(in_channels=1, image_size=28)
    else:
        data = fk.create_datasets("mnist", root=args.data_root, val_fraction=0.1, seed=0)
    model = fk.create_model("convnet", num_classes=data.num_classes, in_channels=data.in_channels, seed=0)

    trainer = fk.Trainer(
        model,
        data,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=0.0,
        scheduler="constant",
        augment=False,  # the recipe trains on the images as they are
        seed=0,
        **trainer_options(args, NAME),
    )
    return fit_and_report(trainer, args)


if __name__ == "__main__":
    sys.exit(run(main))
