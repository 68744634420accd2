"""ResNet-18 on CIFAR-10 with frozen early stages, an AdamW-trained top and a classification report.

The recipe: an ImageNet-pretrained ResNet-18 with the 32-pixel stem (``small_input=True``: the
7x7 stride-2 first convolution is resampled to 3x3 stride 1 and the max-pool removed, so the
network keeps the resolution of 32x32 images instead of shrinking them to 1x1); the stem,
``layer1`` and ``layer2`` frozen (``freeze_first`` with ``n=3``), their BatchNorm layers kept in
inference mode so the pretrained running statistics stay fixed; ``layer3``, ``layer4`` and the
new head trained with AdamW (lr 1e-3, weight decay 0.05, cosine schedule, label smoothing 0.1);
random crops with 4-pixel padding and horizontal flips (the ``cifar`` preset); batch 128,
10 epochs. At the end the per-class precision, recall and F1 are printed.

Needs (without ``--smoke``): CIFAR-10 (found in ``--data-root``, ``$FINETUNE_KIT_DATA``,
``~/.cache/finetune_kit``, the system data folders, or downloaded) and torchvision's ImageNet
weights for ResNet-18 (downloaded into ``$TORCH_HOME``).

Usage::

    python examples/cifar10_resnet18_frozen_adamw.py --device cuda --precision bf16-mixed
    python examples/cifar10_resnet18_frozen_adamw.py --smoke   # fake data, no weights: seconds

The same recipe from a config file:
``finetune-kit train --config examples/configs/cifar10_resnet18_frozen_adamw.toml``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from _script import example_parser, print_results, run, smoke_data, trainer_options

import finetune_kit as fk

NAME = "cifar10_resnet18_frozen_adamw"


def main(argv: Sequence[str] | None = None) -> int:
    args = example_parser(__doc__.splitlines()[0], epochs=10).parse_args(argv)

    if args.smoke:
        data, weights = smoke_data(in_channels=3, image_size=32), None
    else:
        data = fk.create_datasets(
            "cifar10", root=args.data_root, val_fraction=0.1, seed=0, preset="cifar"
        )  # 4-pixel crop, flip
        weights = "imagenet"
    model = fk.create_model(
        "resnet18", num_classes=data.num_classes, weights=weights, small_input=True, seed=0
    )
    print("stages:", ", ".join(stage.name for stage in fk.model_stages(model)))

    trainer = fk.Trainer(
        model,
        data,
        batch_size=128,
        strategy="freeze_first",
        options={"n": 3},  # stem, layer1, layer2 frozen
        bn_policy="eval",  # frozen BatchNorm keeps its pretrained running statistics
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        scheduler="cosine",
        label_smoothing=0.1,
        seed=0,
        **trainer_options(args, NAME),
    )
    started = time.perf_counter()
    history = trainer.fit(resume=args.resume)  # prints the trainable summary first
    if history.interrupted:
        return 130
    report = trainer.test()  # per-class precision / recall / F1 / support, confusion
    worst = min(report.per_class, key=lambda row: row["f1"])
    print(f"\nhardest class: {worst['name']} (F1 {worst['f1']:.3f}, recall {worst['recall']:.3f})")
    seconds = time.perf_counter() - started
    print_results(history, report, seconds, run_dir=trainer.run_dir.root)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
