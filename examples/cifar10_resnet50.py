"""Fine-tune an ImageNet-pretrained ResNet-50 on CIFAR-10 with Adam at lr 1e-4.

The recipe: every layer trains, Adam with lr 1e-4 and no weight decay, a constant learning rate,
batch 64, 5 epochs, images resized to 224x224 with ImageNet normalisation and random crops and
flips (the ``imagenet`` preset). A small learning rate with Adam is the usual way to move a
large pretrained network only a little towards a new task.

Needs (without ``--smoke``): CIFAR-10 (found in ``--data-root``, ``$FINETUNE_KIT_DATA``,
``~/.cache/finetune_kit``, the system data folders, or downloaded) and torchvision's ImageNet
weights for ResNet-50 (98 MB, downloaded into ``$TORCH_HOME``). At 224x224 this is GPU work.

Usage::

    python examples/cifar10_resnet50.py --device cuda --precision bf16-mixed
    python examples/cifar10_resnet50.py --smoke   # fake 32x32 data, no weights: seconds

``--smoke`` uses ``fake`` 32x32 images and random weights (``cifar`` preset, no resize). The
same recipe from a config file: ``finetune-kit train --config examples/configs/cifar10_resnet50.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _script import example_parser, fit_and_report, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "cifar10_resnet50"


def main(argv: Sequence[str] | None = None) -> int:
    args = example_parser(__doc__.splitlines()[0], epochs=5).parse_args(argv)

    if args.smoke:
        data, weights = smoke_data(in_channels=3, image_size=32), None
    else:
        data = fk.create_datasets("cifar10", root=args.data_root, val_fraction=0.1, seed=0, preset="imagenet")
        weights = "imagenet"
    model = fk.create_model("resnet50", num_classes=data.num_classes, weights=weights, seed=0)

    trainer = fk.Trainer(
        model,
        data,
        batch_size=64,
        optimizer="adam",
        lr=1e-4,
        weight_decay=0.0,
        scheduler="constant",
        seed=0,
        **trainer_options(args, NAME),
    )
    return fit_and_report(trainer, args)


if __name__ == "__main__":
    sys.exit(run(main))
