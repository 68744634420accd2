"""Fine-tune an ImageNet-pretrained ResNet-18 on CIFAR-10 at 224x224 pixels.

The recipe of torchvision's transfer-learning tutorial, applied to CIFAR-10: every layer
trains, SGD with lr 0.001 and momentum 0.9, the learning rate divided by 10 after 7 epochs,
batch 64, 10 epochs. The ``imagenet`` preset resizes the 32x32 images to 224x224 (the size the
weights were trained at), trains with random crops and flips and normalises with ImageNet's mean
and standard deviation. The new 10-class head starts from a seeded random initialisation.

Needs (without ``--smoke``):

* CIFAR-10, looked for in ``--data-root``, ``$FINETUNE_KIT_DATA``, ``~/.cache/finetune_kit`` and
  the system data folders, and downloaded (170 MB, checksummed) when found nowhere;
* torchvision's ImageNet weights for ResNet-18 (45 MB, downloaded into ``$TORCH_HOME``).

At 224x224 this is GPU work: on a CPU one epoch takes hours.

Usage::

    python examples/cifar10_resnet18_imagenet.py --device cuda --precision bf16-mixed
    python examples/cifar10_resnet18_imagenet.py --smoke   # fake 32x32 data, no weights: seconds

``--smoke`` uses ``fake`` 32x32 images and random weights, so the ``cifar`` preset (no resize)
is used instead of ``imagenet``. The same recipe from a config file:
``finetune-kit train --config examples/configs/cifar10_resnet18_imagenet.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from _script import example_parser, fit_and_report, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "cifar10_resnet18_imagenet"


def main(argv: Sequence[str] | None = None) -> int:
    args = example_parser(__doc__.splitlines()[0], epochs=10).parse_args(argv)

    if args.smoke:
        data, weights = smoke_data(in_channels=3, image_size=32), None
    else:
        # preset="imagenet": resize to 224, crop + flip, ImageNet mean/std
        data = fk.create_datasets("cifar10", root=args.data_root, val_fraction=0.1, seed=0, preset="imagenet")
        weights = "imagenet"
    model = fk.create_model("resnet18", num_classes=data.num_classes, weights=weights, seed=0)

    trainer = fk.Trainer(
        model,
        data,
        batch_size=64,
        optimizer="sgd",
        lr=0.001,
        momentum=0.9,
        weight_decay=0.0,
        scheduler="step",
        scheduler_options={"step_size": 7, "gamma": 0.1},
        strategy="full",  # every layer trains
        seed=0,
        **trainer_options(args, NAME),
    )
    return fit_and_report(trainer, args)


if __name__ == "__main__":
    sys.exit(run(main))
