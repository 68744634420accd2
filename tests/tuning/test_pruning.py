"""The pruning callback inside a real Trainer run: report every epoch, stop cleanly when told."""

from __future__ import annotations

import tempfile

import pytest

import finetune_kit as fk
from finetune_kit.errors import ConfigError
from finetune_kit.tuning import PruningCallback


class Trial:
    """Records reports; says "prune" from epoch ``prune_from`` on."""

    def __init__(self, prune_from: int | None = None) -> None:
        self.reports: list[tuple[float, int]] = []
        self.prune_from = prune_from

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_from is not None and len(self.reports) >= self.prune_from


def trainer(callback, epochs: int = 3) -> fk.Trainer:
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=60, test_size=6, val_fraction=0.2
    )
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    return fk.Trainer(
        model, data, epochs=epochs, batch_size=16, lr=0.01, progress=False, device="cpu",
        callbacks=[callback], output_dir=tempfile.mkdtemp() + "/run",
    )  # fmt: skip


def test_reports_every_epoch_and_stops_when_pruned():
    trial = Trial(prune_from=2)
    callback = PruningCallback(trial, "val_accuracy")
    run = trainer(callback, epochs=4)
    history = run.fit()
    assert [step for _, step in trial.reports] == [1, 2]
    assert len(history) == 2 and callback.pruned_at == 2
    assert history.stop_reason.startswith("pruned after epoch 2: val_accuracy = ")
    assert (run.run_dir.root / "last.ckpt").is_file()


def test_a_run_that_is_not_pruned_runs_every_epoch():
    trial = Trial()
    callback = PruningCallback(trial, "val_loss")
    assert len(trainer(callback, epochs=2).fit()) == 2
    assert callback.pruned_at is None and len(trial.reports) == 2
    assert callback.last_value == trial.reports[-1][0]


def test_a_metric_that_is_not_logged_is_an_error():
    with pytest.raises(ConfigError, match="Did you mean 'val_accuracy'"):
        trainer(PruningCallback(Trial(), "val_acc"), epochs=1).fit()
