"""The lr range test with a run's parts: Trainer.lr_find, optim.lr = "find", FineTuner stages."""

from __future__ import annotations

import json

import pytest
import torch

import finetune_kit as fk
from finetune_kit.config import load_config
from finetune_kit.training import lr_search


@pytest.fixture
def data():
    return fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=64, test_size=12, val_fraction=0.25
    )


def new_model():
    return fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)


@pytest.fixture
def seen_optimizers(monkeypatch):
    """The optimizer each range test got (the real test still runs)."""
    seen = []
    real = lr_search.lr_find

    def spy(model, loader, **kwargs):
        seen.append(kwargs["optimizer"])
        return real(model, loader, **kwargs)

    monkeypatch.setattr(lr_search, "lr_find", spy)
    return seen


@pytest.mark.parametrize("strategy", ["linear_probe", "discriminative_lr"])
def test_trainer_lr_find_uses_the_runs_groups_and_freezing(data, tmp_path, seen_optimizers, strategy):
    model = new_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = fk.Trainer(
        model, data, batch_size=16, strategy=strategy, verbosity=0, output_dir=str(tmp_path / "r")
    )
    result = trainer.lr_find(num_steps=30)
    assert len(result.lrs) <= 30 and result.suggested is not None
    (optimizer,) = seen_optimizers
    in_groups = {id(p) for g in optimizer.param_groups for p in g["params"]}
    head = {id(p) for p in model.fc3.parameters()}
    mults = sorted({g["lr_mult"] for g in optimizer.param_groups})
    if strategy == "linear_probe":
        assert in_groups == head and mults == [1.0]  # only the head trains
    else:
        assert len(in_groups) == len(list(model.parameters())) and mults == [0.0625, 0.125, 0.25, 0.5, 1.0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not (tmp_path / "r").exists()  # a range test writes no run directory


def test_lr_find_in_the_config_trains_with_the_suggestion_and_records_it(data, tmp_path):
    trainer = fk.Trainer(
        new_model(), data, epochs=1, batch_size=16, lr="find", plots=True, verbosity=0,
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    history = trainer.fit()
    found = trainer.lr_search.suggested
    root = trainer.run_dir.root
    assert isinstance(found, float) and history.rows[0]["lr"] == pytest.approx(found)
    assert load_config(root / "config.toml").optim.lr == pytest.approx(found)
    assert json.loads((root / "lr_find.json").read_text())["suggested"] == pytest.approx(found)
    assert (root / "plots" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert f"sgd lr {found:.4g} (found by the lr range test)" in (root / "train.log").read_text()
    # Resuming trains on at the recorded lr, without a new search.
    again = fk.Trainer(
        new_model(), data, epochs=2, batch_size=16, lr="find", verbosity=0, output_dir=str(root)
    )
    again.fit(resume="last")
    assert again.lr_search is None and again.config.optim.lr == pytest.approx(found)


def test_each_finetuner_stage_finds_its_own_lr(data, tmp_path):
    tuner = fk.FineTuner(
        new_model(), dataset=data, recipe="two_stage", epochs=1, freeze_epochs=1, lr="find", batch_size=16,
        verbosity=0, output_dir=str(tmp_path / "ft"),
    )  # fmt: skip
    assert [stage.lr for stage in tuner.stages] == ["find", "find"]
    tuner.fit()
    found = [load_config(tuner.stage_dir(i) / "config.toml").optim.lr for i in range(2)]
    assert all(isinstance(lr, float) and lr > 0 for lr in found)


def test_the_range_test_is_seeded_and_leaves_the_rng_alone(tmp_path):
    data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=28, train_size=64, test_size=8)
    model = fk.create_model("convnet", num_classes=2, in_channels=1)  # dropout: the RNG matters
    trainer = fk.Trainer(model, data, batch_size=16, verbosity=0, output_dir=str(tmp_path / "r"))
    rng = torch.get_rng_state()
    first, second = trainer.lr_find(num_steps=12), trainer.lr_find(num_steps=12)
    assert first.raw_losses == second.raw_losses and first.suggested == second.suggested
    assert torch.equal(rng, torch.get_rng_state())
