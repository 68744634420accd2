"""Callbacks: hook names are checked, and each standard callback does what it says."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from finetune_kit.callbacks import (
    EVENTS,
    Callback,
    CallbackList,
    EarlyStopping,
    ModelCheckpoint,
    NaNGuard,
)
from finetune_kit.errors import ConfigError, TrainingError
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.training.state import TrainState


class FakeTrainer:
    """Just enough of a Trainer for callbacks: state, run_dir, request_stop, save_checkpoint."""

    is_main = True

    def __init__(self, run_dir=None):
        self.state = TrainState()
        self.run_dir = run_dir
        self.saved: list[str] = []

    def request_stop(self, reason):
        if self.state.stop_reason is None:
            self.state.stop_reason = reason

    def save_checkpoint(self, name, *, weights_only=False):
        path = self.run_dir.path(name)
        path.write_text(f"epoch {self.state.epoch}" + (" weights" if weights_only else ""))
        self.saved.append(name)
        return path

    def link_checkpoint(self, source, target):
        from finetune_kit.storage.checkpoint import link_checkpoint

        link_checkpoint(self.run_dir.path(source), self.run_dir.path(target))


def test_misspelt_hook_raises_at_class_definition():
    with pytest.raises(ConfigError, match="on_epoch_ned is not a callback hook.*on_epoch_end"):

        class Bad(Callback):
            def on_epoch_ned(self, trainer):
                pass


def test_every_event_is_dispatched_in_order():
    calls = []

    class Recorder(Callback):
        pass

    for event in EVENTS:
        setattr(Recorder, f"on_{event}", lambda self, trainer, e=event: calls.append(e))
    callbacks = CallbackList([Recorder()])
    for event in EVENTS:
        callbacks.fire(event, None)
    assert calls == list(EVENTS)


def test_callback_list_rejects_non_callbacks():
    with pytest.raises(ConfigError, match="must be Callback instances"):
        CallbackList([object()])


def run_epochs(callback, values, key="val_loss", hook="on_validation_end"):
    trainer = FakeTrainer()
    for epoch, value in enumerate(values):
        trainer.state.epoch = epoch
        trainer.state.metrics = {key: value}
        getattr(callback, hook)(trainer)
        if trainer.state.stop_reason:
            return epoch, trainer
    return None, trainer


def test_early_stopping_stops_at_the_right_epoch():
    # best at epoch 1 (0.5); epochs 2, 3 do not improve -> stop after epoch 3 with patience 2
    stopped, trainer = run_epochs(EarlyStopping("val_loss", "min", patience=2), [0.9, 0.5, 0.6, 0.55, 0.1])
    assert stopped == 3
    assert "did not improve for 2 epochs" in trainer.state.stop_reason


def test_early_stopping_min_delta_and_max_mode():
    stopped, _ = run_epochs(
        EarlyStopping("val_accuracy", "max", patience=1, min_delta=0.01),
        [0.80, 0.805, 0.9],
        key="val_accuracy",
    )
    assert stopped == 1  # +0.005 is below min_delta
    stopped, _ = run_epochs(
        EarlyStopping("val_accuracy", "max", patience=1), [0.8, 0.81, 0.82], key="val_accuracy"
    )
    assert stopped is None


def test_early_stopping_unknown_metric():
    with pytest.raises(ConfigError, match="'val_acc' is not logged.*val_accuracy"):
        run_epochs(EarlyStopping("val_acc"), [0.5], key="val_accuracy")


def test_early_stopping_state_round_trip():
    cb = EarlyStopping(patience=3)
    run_epochs(cb, [1.0, 2.0])
    other = EarlyStopping(patience=3)
    other.load_state_dict(cb.state_dict())
    assert (other.best, other.bad_epochs) == (1.0, 1)


def test_model_checkpoint_keeps_top_k(tmp_path):
    trainer = FakeTrainer(RunDir.create(tmp_path / "run"))
    cb = ModelCheckpoint(monitor="val_accuracy", mode="max", save_top_k=2)
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.9, 0.4]):
        trainer.state.epoch, trainer.state.metrics = epoch, {"val_accuracy": acc}
        cb.on_epoch_end(trainer)
    kept = sorted(p.name for p in (tmp_path / "run").glob("epoch=*.ckpt"))
    assert kept == ["epoch=1-val_accuracy=0.7000.ckpt", "epoch=3-val_accuracy=0.9000.ckpt"]
    best = tmp_path / "run" / "best.ckpt"
    assert best.read_text() == "epoch 3 weights"  # top-k files hold weights, last.ckpt the state
    assert best.stat().st_ino == (tmp_path / "run" / "epoch=3-val_accuracy=0.9000.ckpt").stat().st_ino
    assert (tmp_path / "run" / "last.ckpt").read_text() == "epoch 4"
    assert cb.best_path == "epoch=3-val_accuracy=0.9000.ckpt"


def test_model_checkpoint_last_only(tmp_path):
    trainer = FakeTrainer(RunDir.create(tmp_path / "run"))
    cb = ModelCheckpoint(monitor=None)
    cb.on_epoch_end(trainer)
    assert trainer.saved == ["last.ckpt"]


def test_nan_guard_fires_on_injected_nan(tmp_path):
    trainer = FakeTrainer(RunDir.create(tmp_path / "run"))
    guard = NaNGuard(check_every=1)
    trainer.state.batch, trainer.state.last_loss = 1, torch.tensor(0.3)
    guard.on_train_batch_end(trainer)
    trainer.state.batch, trainer.state.last_loss = 2, torch.tensor(float("nan"))
    with pytest.raises(TrainingError, match="loss became nan at epoch 0, batch 2"):
        guard.on_train_batch_end(trainer)


def test_nan_guard_checks_only_every_k_batches():
    trainer = FakeTrainer()
    trainer.state = SimpleNamespace(batch=3, last_loss=torch.tensor(float("inf")), epoch=0, global_step=3)
    NaNGuard(check_every=2).on_train_batch_end(trainer)  # batch 3 is not checked: no error


def test_bad_arguments():
    with pytest.raises(ConfigError):
        EarlyStopping(mode="up")
    with pytest.raises(ConfigError):
        EarlyStopping(patience=0)
    with pytest.raises(ConfigError):
        ModelCheckpoint(save_top_k=-1)


def test_each_learning_rate_is_logged_by_the_stages_that_train_at_it(tmp_path):
    import finetune_kit as fk

    data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16, train_size=32, test_size=8)
    model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
    trainer = fk.Trainer(
        model, data, epochs=1, batch_size=16, lr=0.01, strategy="discriminative_lr", verbosity=0,
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    row = trainer.fit().rows[0]
    rates = {k: v for k, v in row.items() if k.startswith("lr")}
    # lenet's stages conv1, conv2, fc1, fc2, head; each earlier stage at half the rate
    assert rates == pytest.approx(
        {
            "lr": 0.01,
            "lr_conv1": 0.000625,
            "lr_conv2": 0.00125,
            "lr_fc1": 0.0025,
            "lr_fc2": 0.005,
            "lr_head": 0.01,
        }
    )
    assert list(row)[:4] == ["epoch", "step", "train_loss", "train_accuracy"]
    assert row["images_per_s"] > 0 and row["epoch_time"] > 0
    plain = fk.Trainer(
        fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16), data, epochs=1,
        batch_size=16, lr=0.01, verbosity=0, output_dir=str(tmp_path / "plain"),
    ).fit().rows[0]  # fmt: skip
    assert [k for k in plain if k.startswith("lr")] == ["lr"]  # one rate: one column
