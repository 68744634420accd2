"""Train the MNIST-recipe ConvNet on real Fashion-MNIST and print the test report.

The recipe: the Keras / PyTorch-examples ConvNet (conv 32, conv 64, max-pool, fc 128, fc 10),
SGD with Nesterov momentum 0.9, lr 0.05 on a one-cycle schedule, weight decay 5e-4, label
smoothing 0.1, batch 128, the ``fashion`` preset (random crop with 2-pixel padding and
horizontal flips), 10% of the training set held out (stratified) for validation.

Data: Fashion-MNIST is looked for in ``--data-root``, ``$FINETUNE_KIT_DATA``,
``~/.cache/finetune_kit`` and ``/usr/share/datasets/fashion-mnist`` (Debian:
``apt-get install dataset-fashion-mnist``), and downloaded (with checksums) when found nowhere.

Usage::

    python examples/fashion_mnist_convnet.py                  # the full run (minutes on a CPU)
    python examples/fashion_mnist_convnet.py --smoke          # seconds, on 384 real images
    python examples/fashion_mnist_convnet.py --smoke --fake-data   # no data files needed

The same run from a config file:
``finetune-kit train --config examples/configs/fashion_mnist_convnet.toml``.
Measured results are in docs/tutorials/fashion_mnist_convnet.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from _script import example_parser, print_results, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "fashion_mnist_convnet"


def tiny_fashion_mnist(root: str | None, *, train: int = 256, test: int = 128) -> fk.DataBundle:
    """The first ``train`` / ``test`` images of the real dataset (no download), for smoke runs."""
    full = fk.create_datasets("fashion_mnist", root=root, val_fraction=0, download=False)
    return fk.create_datasets(
        "tensors",
        train=(full.train.images[:train], full.train.targets[:train]),
        test=(full.test.images[:test], full.test.targets[:test]),
        class_names=full.class_names,
        preset="fashion",  # the recipe of the real dataset (a "tensors" dataset has none)
        val_fraction=0.125,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=3)
    parser.add_argument(
        "--fake-data", action="store_true", help="with --smoke: use fake images instead of a real subset"
    )
    args = parser.parse_args(argv)
    if args.fake_data and not args.smoke:
        parser.error("--fake-data is only for --smoke runs")

    if args.smoke and args.fake_data:
        data = smoke_data(in_channels=1, image_size=28)
    elif args.smoke:
        data = tiny_fashion_mnist(args.data_root)
    else:
        data = fk.create_datasets("fashion_mnist", root=args.data_root, val_fraction=0.1, seed=0)
    print(
        f"{data.name}: {len(data.train)} train / {len(data.val)} val / "
        f"{len(data.test)} test images, preset {data.preset.name!r}"
    )

    model = fk.create_model("convnet", num_classes=data.num_classes, in_channels=data.in_channels, seed=0)
    trainer = fk.Trainer(
        model,
        data,
        batch_size=128,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        scheduler="onecycle",
        label_smoothing=0.1,
        seed=0,
        **trainer_options(args, NAME),
    )
    started = time.perf_counter()
    history = trainer.fit(resume=args.resume)
    if history.interrupted:
        return 130
    report = trainer.test()  # prints the classification report, saves report.txt/.json
    seconds = time.perf_counter() - started
    print_results(history, report, seconds, run_dir=trainer.run_dir.root)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
