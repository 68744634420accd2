"""Convolution from scratch: verify it against PyTorch, then train a network built from it.

Three steps:

1. :func:`finetune_kit.scratch.verify_conv` compares the from-scratch convolution (im2col
   forward, hand-written backward) with PyTorch's own layer on a table of configurations
   (padding, stride, dilation, groups, rectangular kernels), outputs and all three gradients,
   against a float64 reference.
2. A LeNet for 28x28 grayscale images is converted with
   :func:`finetune_kit.scratch.convert_to_scratch`: its ``Conv2d``, ``MaxPool2d`` and ``Linear``
   layers become the scratch versions, keeping the same weights, and both give the same logits.
3. Both networks train from the same initial weights on the same batches (SGD, lr 0.05,
   momentum 0.9), and the script prints their test accuracy and training time. The
   accuracies agree closely but not exactly: the scratch layers sum in another order, so the
   rounding differs and the two runs drift apart a little.

Data (without ``--smoke``): the first ``--train-size`` images of real Fashion-MNIST and its full
test set (found in ``--data-root``, ``$FINETUNE_KIT_DATA``, ``~/.cache/finetune_kit``,
``/usr/share/datasets/fashion-mnist``, or downloaded).

Usage::

    python examples/conv_from_scratch.py                  # a minute or two on a CPU
    python examples/conv_from_scratch.py --smoke          # fake data, two configurations: seconds

The tutorial "Convolution from scratch" in the docs explains the code of ``finetune_kit.scratch``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from _script import example_parser, machine, run, smoke_data, trainer_options

import finetune_kit as fk
from finetune_kit import scratch

NAME = "conv_from_scratch"
SMOKE_CONFIGS = (
    scratch.ConvConfig(batch=2, in_channels=3, out_channels=4, size=(7, 7), padding=1),
    scratch.ConvConfig(batch=2, in_channels=4, out_channels=4, size=(8, 8), stride=2, groups=2),
)


def verify(smoke: bool) -> bool:
    """Step 1: the scratch convolution against PyTorch's, in float64 and float32."""
    configs = SMOKE_CONFIGS if smoke else None  # None: the library's full table
    passed = True
    for dtype in (torch.float64, torch.float32):
        report = scratch.verify_conv(configs, dtype=dtype)
        print(report.table(), end="\n\n")
        passed = passed and report.passed
    return passed


def convert(model: torch.nn.Module, data: fk.DataBundle) -> torch.nn.Module:
    """Step 2: the same network with scratch layers, checked to give the same logits."""
    scratch_model = scratch.convert_to_scratch(model)  # a deep copy; ``model`` is unchanged
    x = data.test.images[:8].float() / 255
    with torch.no_grad():
        difference = (scratch_model.eval()(x) - model.eval()(x)).abs().max().item()
    layers = sorted(
        {
            type(m).__name__
            for m in scratch_model.modules()
            if type(m).__module__.startswith("finetune_kit.scratch")
        }
    )
    print(f"converted layers: {', '.join(layers)}; max |logit difference| = {difference:.2e}")
    return scratch_model.train()


def train(model: torch.nn.Module, data: fk.DataBundle, options: dict, label: str):
    """Step 3: one run of the Trainer; returns (test accuracy, seconds)."""
    trainer = fk.Trainer(
        model,
        data,
        batch_size=64,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=0.0,
        augment=False,
        seed=0,
        progress=False,
        **options,
    )
    started = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - started
    report = trainer.test(print_report=False)
    print(f"{label:>16}: test accuracy {report.accuracy:.4f} after {seconds:.1f} s of training")
    return report.accuracy, seconds


def load_data(args) -> fk.DataBundle:
    if args.smoke:
        return smoke_data(in_channels=1, image_size=28)
    full = fk.create_datasets("fashion_mnist", root=args.data_root, val_fraction=0)
    n = args.train_size
    return fk.create_datasets(
        "tensors",
        train=(full.train.images[:n], full.train.targets[:n]),
        test=(full.test.images, full.test.targets),
        class_names=full.class_names,
        preset="none",
        val_fraction=0,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = example_parser(__doc__.splitlines()[0], epochs=1)
    parser.add_argument(
        "--train-size",
        type=int,
        default=10_000,
        help="training images taken from Fashion-MNIST (default 10000)",
    )
    args = parser.parse_args(argv)

    print("Step 1: verify the scratch convolution against PyTorch\n")
    if not verify(args.smoke):
        print("verification FAILED", file=sys.stderr)
        return 1

    print("Step 2: convert a LeNet to scratch layers")
    data = load_data(args)
    model = fk.create_model("lenet", num_classes=data.num_classes, in_channels=1, input_size=28, seed=0)
    scratch_model = convert(model, data)

    print(f"\nStep 3: train both on {len(data.train)} images, test on {len(data.test)}")
    options = trainer_options(args, NAME)
    root = Path(options.pop("output_dir"))
    options.pop("progress", None)
    torch_acc, torch_s = train(model, data, {**options, "output_dir": str(root / "torch")}, "PyTorch layers")
    scratch_acc, scratch_s = train(
        scratch_model, data, {**options, "output_dir": str(root / "scratch")}, "scratch layers"
    )
    slower = scratch_s / max(torch_s, 1e-9)
    print(
        f"\naccuracy difference {scratch_acc - torch_acc:+.4f}; "
        f"the scratch layers took {slower:.1f}x as long, on {machine()}"
    )
    print(f"run directories: {root / 'torch'}, {root / 'scratch'}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
