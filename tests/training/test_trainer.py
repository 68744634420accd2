"""Trainer: a real fit, run files, reports, stopping, and exact resume."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

import finetune_kit as fk
from finetune_kit.callbacks import Callback
from finetune_kit.errors import ConfigError, OutputDirError
from finetune_kit.runtime import seed_everything
from finetune_kit.storage.checkpoint import load_checkpoint


class TinyNet(torch.nn.Module):
    """Small and fast, with BatchNorm and dropout so resume must restore buffers and RNG."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(8 * 7 * 7, num_classes)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 4)
        return self.fc(self.drop(x.flatten(1)))


@pytest.fixture(autouse=True)
def tiny_net_registered():
    fk.register_model(
        "tiny_test_net", lambda num_classes, in_channels, **kw: TinyNet(num_classes, in_channels)
    )
    yield
    fk.models.MODELS.unregister("tiny_test_net")


def fake_data(**kw):
    options = dict(num_classes=3, in_channels=1, image_size=28, train_size=96, test_size=30, seed=0)
    options.update(kw)
    return fk.create_datasets("fake", val_fraction=0.25, **options)


def small_model(data, name="tiny_test_net"):
    return fk.create_model(name, num_classes=data.num_classes, in_channels=data.in_channels)


def make_trainer(tmp_path, data=None, name="run", **options):
    data = data or fake_data()
    defaults = dict(
        epochs=2,
        batch_size=16,
        lr=0.05,
        progress=False,
        deterministic=True,
        output_dir=str(tmp_path / name),
        device="cpu",
    )
    defaults.update(options)
    return fk.Trainer(small_model(data), data, **defaults)


def test_fit_writes_the_run_files(tmp_path):
    trainer = make_trainer(tmp_path)
    history = trainer.fit()
    assert len(history) == 2 and history["epoch"] == [1, 2]
    run = tmp_path / "run"
    for name in ("config.toml", "split.json", "trainable.txt", "metrics.csv", "last.ckpt", "best.ckpt"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    assert fk.load_config(run / "config.toml").optim.lr == 0.05


def test_test_report_is_printed_and_saved(tmp_path, capsys):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    report = trainer.test()
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "f1-score" in out
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert abs(saved["accuracy"] - report.accuracy) < 1e-12
    assert (tmp_path / "run" / "report.txt").read_text().strip() == report.text().strip()
    assert sum(map(sum, saved["confusion"])) == 30


def test_unknown_option_suggests(tmp_path):
    with pytest.raises(ConfigError, match="unknown option 'learning_rate'"):
        make_trainer(tmp_path, learning_rate=0.1)
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        make_trainer(tmp_path, epoch=3)
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        make_trainer(tmp_path, lr=0.0)


def test_existing_run_directory_is_not_overwritten(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    before = (tmp_path / "run" / "last.ckpt").read_bytes()
    with pytest.raises(OutputDirError, match="already exists"):
        make_trainer(tmp_path, epochs=1).fit()
    assert (tmp_path / "run" / "last.ckpt").read_bytes() == before


def test_max_steps_stops_early(tmp_path):
    trainer = make_trainer(tmp_path, epochs=5, max_steps=3)
    history = trainer.fit()
    assert trainer.state.global_step == 3
    assert history.stop_reason == "reached max_steps=3"


class StopAt(Callback):
    """Simulate a SIGINT arriving at a given global step."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.state.global_step == self.step:
            trainer.stop_signal = "SIGINT"


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "options",
    [
        dict(scheduler="onecycle"),
        dict(scheduler="cosine", warmup_epochs=0.5, ema=0.9),
    ],
)
def test_resume_mid_epoch_is_bit_identical(tmp_path, options):
    data = fake_data()
    full = make_trainer(tmp_path, data=data, name="full", epochs=3, **options)
    full.fit()

    first = make_trainer(tmp_path, data=data, name="split", epochs=3, callbacks=[StopAt(7)], **options)
    history = first.fit()
    assert history.interrupted and first.state.epoch == 1  # 5 batches per epoch: step 7 is mid-epoch 2
    seed_everything(987654)  # a new process would start from other RNG states
    second = make_trainer(tmp_path, data=data, name="split", epochs=3, **options)
    second.fit(resume=tmp_path / "split" / "last.ckpt")

    expected, got = weights(full.model), weights(second.model)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert second.history.rows[-1]["train_loss"] == full.history.rows[-1]["train_loss"]


def test_resume_rejects_another_model(tmp_path):
    data = fake_data()
    make_trainer(tmp_path, data=data, epochs=1).fit()
    other = fk.Trainer(
        fk.create_model("lenet", num_classes=3, in_channels=1),
        data,
        epochs=2,
        progress=False,
        output_dir=str(tmp_path / "run"),
    )
    with pytest.raises(fk.CheckpointError, match="written for model 'tiny_test_net'"):
        other.fit(resume=tmp_path / "run" / "last.ckpt")


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, lr=1e6, log_every=1, epochs=3)
    with pytest.raises(fk.TrainingError, match="loss became"):
        trainer.fit()


def test_bf16_mixed_runs_on_cpu(tmp_path):
    history = make_trainer(tmp_path, epochs=1, precision="bf16-mixed", deterministic=False).fit()
    assert history.rows[0]["train_loss"] > 0


def test_grad_accumulation_steps(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, grad_accum=2)
    trainer.fit()
    assert trainer.state.global_step == 3  # 5 batches -> steps after 2, 4 and the last batch


def test_real_fashion_mnist_subset_end_to_end(tmp_path, fashion_mnist_dir):
    full = fk.create_datasets("fashion_mnist", root=str(fashion_mnist_dir), val_fraction=0.0)
    n_train, n_test = 3000, 1000
    data = fk.create_datasets(
        "tensors",
        train=(full.train.images[:n_train], full.train.targets[:n_train]),
        test=(full.test.images[:n_test], full.test.targets[:n_test]),
        class_names=full.class_names,
        val_fraction=0.1,
    )
    trainer = fk.Trainer(
        small_model(data, "convnet"),
        data,
        epochs=1,
        batch_size=32,
        lr=0.05,
        scheduler="onecycle",
        progress=False,
        output_dir=str(tmp_path / "fm"),
    )
    trainer.fit()
    report = trainer.test(print_report=False)
    assert report.accuracy > 0.65, report.text()  # chance is 0.10


class CrashAt(Callback):
    """Simulate a crash (no chance to save) at a given global step."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.state.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_checkpoint_every_steps_resumes_exactly(tmp_path):
    data = fake_data()
    full = make_trainer(tmp_path, data=data, name="full", epochs=2, scheduler="onecycle")
    full.fit()
    # Checkpoints every 3 steps, crashes at step 8: the step-6 checkpoint (epoch 2, batch 1) is resumed.
    saver = make_trainer(
        tmp_path,
        data=data,
        name="saver",
        epochs=2,
        scheduler="onecycle",
        checkpoint_every=3,
        callbacks=[CrashAt(8)],
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        saver.fit()
    state = load_checkpoint(tmp_path / "saver" / "last.ckpt")
    assert state["position"] == {"epoch": 1, "batch": 1, "global_step": 6, "skipped_steps": 0}
    seed_everything(1)
    resumed = make_trainer(tmp_path, data=data, name="saver", epochs=2, scheduler="onecycle")
    resumed.fit(resume=tmp_path / "saver" / "last.ckpt")
    for key, value in weights(full.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_extra_metrics_and_mixup_resume_exactly(tmp_path):
    data = fake_data()
    options = dict(
        epochs=2, mixup_alpha=0.4, cutmix_alpha=1.0, label_smoothing=0.1, metrics=["f1", "precision"]
    )
    full = make_trainer(tmp_path, data=data, name="full", **options)
    history = full.fit()
    row = history.rows[-1]
    assert 0.0 <= row["val_f1"] <= 1.0 and 0.0 <= row["val_precision"] <= 1.0
    cut = make_trainer(tmp_path, data=data, name="cut", callbacks=[StopAt(7)], **options)
    cut.fit()
    seed_everything(2)
    resumed = make_trainer(tmp_path, data=data, name="cut", **options)
    resumed.fit(resume=tmp_path / "cut" / "last.ckpt")
    for key, value in weights(full.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_plateau_needs_a_validation_set(tmp_path):
    data = fk.create_datasets(
        "fake", val_fraction=0.0, num_classes=3, in_channels=1, image_size=28, train_size=40, test_size=10
    )
    with pytest.raises(ConfigError, match="plateau.*no validation set"):
        make_trainer(tmp_path, data=data, scheduler="plateau").fit()
    assert not (tmp_path / "run" / "last.ckpt").exists()


@pytest.mark.parametrize(
    "option",
    [dict(optimizer="sgdd"), dict(scheduler="cosin"), dict(loss="focall"), dict(strategy="linear_prob")],
)
def test_unknown_part_names_leave_no_run_directory(tmp_path, option):
    with pytest.raises(fk.UnknownNameError, match="Did you mean"):
        make_trainer(tmp_path, **option).fit()
    assert not (tmp_path / "run").exists()


def test_fp16_mixed_runs_on_cpu(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, precision="16-mixed", deterministic=False)
    history = trainer.fit()
    assert trainer.precision.autocast_dtype is torch.float16 and not trainer.precision.use_scaler
    assert history.rows[0]["train_loss"] > 0


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_cuda_channels_last_and_compile(tmp_path, precision):
    trainer = make_trainer(
        tmp_path,
        epochs=1,
        device="cuda",
        precision=precision,
        channels_last=True,
        compile=True,
        deterministic=False,
    )
    history = trainer.fit()
    assert next(trainer.model.parameters()).is_cuda
    assert trainer.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert history.rows[0]["train_loss"] > 0
    if precision == "16-mixed":
        assert "skipped_steps" in history.rows[0]


class _ThreadsSeen(Callback):
    def __init__(self):
        self.seen = set()

    def on_train_batch_end(self, trainer):
        self.seen.add(torch.get_num_threads())


def test_the_run_uses_train_threads_says_so_and_restores_torch_threads(tmp_path, capsys):
    before = torch.get_num_threads()
    seen = _ThreadsSeen()
    trainer = make_trainer(tmp_path, threads=1, epochs=1, progress=True, callbacks=[seen])
    trainer.fit()
    assert seen.seen == {1} and torch.get_num_threads() == before
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("CPU threads")]
    assert lines == ["CPU threads: 1 (train.threads = 1); precision 32"]
    trainer.test(print_report=False)
    assert trainer.thread_plan.threads == 1 and torch.get_num_threads() == before


def test_auto_threads_never_oversubscribe(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)  # threads = "auto", the default
    trainer.fit()
    assert trainer.config.train.threads == "auto"
    assert 1 <= trainer.thread_plan.threads <= len(os.sched_getaffinity(0))


def test_evaluation_batches_are_twice_the_training_batch_by_default(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, batch_size=8)
    trainer.fit()
    assert (trainer.loaders.train.batch_size, trainer.loaders.test.batch_size) == (8, 16)
    sized = make_trainer(tmp_path, name="sized", epochs=1, batch_size=8, eval_batch_size=30)
    sized.fit()
    assert sized.loaders.val.batch_size == 30
