"""FineTuner recipes: what trains in each stage, run directories, resume, CLI."""

from __future__ import annotations

import pytest
import torch

import finetune_kit as fk
from finetune_kit.callbacks import Callback
from finetune_kit.cli import main
from finetune_kit.runtime import seed_everything
from finetune_kit.training.finetuner import FineTuner, list_recipes


@pytest.fixture(scope="module")
def data():
    return fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=64, test_size=16, val_fraction=0.25
    )


def tuner(tmp_path, data, name="ft", **kw):
    options = dict(
        model="lenet",
        dataset=data,
        weights=None,
        epochs=1,
        freeze_epochs=1,
        batch_size=16,
        progress=False,
        deterministic=True,
        device="cpu",
        model_options={"input_size": 16},
        output_dir=str(tmp_path / name),
    )
    options.update(kw)
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    options["model"] = model
    options.pop("model_options")
    return FineTuner(**options)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before, model):
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_recipes_are_listed():
    assert list_recipes() == ["gradual", "linear_probe", "two_stage"]


def test_two_stage_trains_head_then_everything(tmp_path, data):
    ft = tuner(tmp_path, data)
    head = fk.model_info(ft.model).head
    start = snapshot(ft.model)
    stage1 = ft._stage_trainer(0, ft.stages[0])
    stage1.fit()
    assert changed(start, ft.model) == {f"{head}.weight", f"{head}.bias"}
    after_head = snapshot(ft.model)
    stage2 = ft._stage_trainer(1, ft.stages[1])
    stage2.fit()
    assert changed(after_head, ft.model) == set(after_head)  # every tensor moved
    mults = sorted({g["lr_mult"] for g in stage2.optimizer.param_groups})
    assert mults[0] < mults[-1] == 1.0  # discriminative: earlier stages learn slower
    assert (tmp_path / "ft" / "1-head" / "last.ckpt").is_file()
    assert (tmp_path / "ft" / "2-full" / "last.ckpt").is_file()


def test_linear_probe_keeps_backbone(tmp_path, data):
    ft = tuner(tmp_path, data, recipe="linear_probe", epochs=2)
    start = snapshot(ft.model)
    history = ft.fit()
    head = fk.model_info(ft.model).head
    assert changed(start, ft.model) == {f"{head}.weight", f"{head}.bias"}
    assert [row["stage"] for row in history.rows] == ["head", "head"]


def test_gradual_unfreezes_over_epochs(tmp_path, data):
    ft = tuner(tmp_path, data, recipe="gradual", epochs=3, every=1)
    ft.fit()
    groups = ft.trainer.optimizer.param_groups
    assert len(groups) > 1  # groups were added as stages unfroze


class Interrupt(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer):
        if trainer.state.global_step == self.step:
            trainer.stop_signal = "SIGTERM"


def test_resume_in_second_stage_matches_uninterrupted(tmp_path, data):
    full = tuner(tmp_path, data, name="full", epochs=2)
    full.fit()
    first = tuner(tmp_path, data, name="cut", epochs=2, callbacks=[Interrupt(4)])
    history = first.fit()
    # 3 steps per epoch: step 4 falls in the second epoch of the second stage
    assert history.interrupted and [r["stage"] for r in history.rows] == ["head", "full"]
    seed_everything(3)
    second = tuner(tmp_path, data, name="cut", epochs=2)
    second.fit(resume=True)
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key


def test_unknown_recipe(tmp_path, data):
    with pytest.raises(fk.UnknownNameError, match="Unknown recipe 'two_stages'.*Did you mean 'two_stage'"):
        tuner(tmp_path, data, recipe="two_stages")


def test_cli_recipe(tmp_path, capsys):
    config = tmp_path / "ft.toml"
    config.write_text("""
[data]
dataset = "fake"
options = {train_size = 48, test_size = 12, num_classes = 3, in_channels = 1, image_size = 16}
[model]
name = "lenet"
options = {input_size = 16}
[finetune]
recipe = "two_stage"
freeze_epochs = 1
[train]
epochs = 1
progress = false
""")
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 0
    assert "f1-score" in capsys.readouterr().out
    assert (tmp_path / "run" / "2-full" / "report.json").is_file()
