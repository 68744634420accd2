"""Run under torchrun by tests/runtime/test_distributed.py: DDP scenarios on a real Fashion-MNIST subset.

Usage: torchrun --nproc_per_node=2 tests/runtime/ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import finetune_kit as fk
from finetune_kit.callbacks import Callback
from finetune_kit.runtime import seed_everything

SUBSET = (512, 256)  # training and test images taken from the real Fashion-MNIST


def subset_bundle():
    full = fk.create_datasets("fashion_mnist", val_fraction=0.0)
    n_train, n_test = SUBSET
    return fk.create_datasets(
        "tensors",
        val_fraction=0.25,
        seed=0,
        class_names=full.class_names,
        train=(full.train.images[:n_train], full.train.targets[:n_train]),
        test=(full.test.images[:n_test], full.test.targets[:n_test]),
    )


def trainer(data, out, name, batch_size, **options):
    model = fk.create_model("lenet", num_classes=10, in_channels=1, input_size=28)
    defaults = dict(
        epochs=2,
        batch_size=batch_size,
        lr=0.05,
        scheduler="onecycle",
        device="cpu",
        deterministic=True,
        progress=False,
        log_every=1,
        output_dir=str(out / name),
    )
    defaults.update(options)
    return fk.Trainer(model, data, **defaults)


class TermOnRankZero(Callback):
    """A SIGTERM that only rank 0 sees: the ranks must still agree to stop together."""

    def on_train_batch_end(self, trainer):
        if trainer.dist.rank == 0 and trainer.state.global_step == 9:
            trainer.stop_signal = "SIGTERM"


def main(out: Path) -> None:
    data = subset_bundle()
    full = trainer(data, out, "ddp_full", 16)
    full.fit()
    full.test(print_report=False)

    cut = trainer(data, out, "ddp_cut", 16, callbacks=[TermOnRankZero()])
    assert cut.fit().interrupted
    seed_everything(123)
    trainer(data, out, "ddp_cut", 16).fit(resume=out / "ddp_cut" / "last.ckpt")

    gradual = trainer(
        data, out, "ddp_gradual", 16, epochs=3, strategy="gradual_unfreeze", options={"every": 1}
    )
    gradual.fit()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
