"""What the Trainer takes from its caller and keeps: the user's freezing, custom modules,
optimizer options, and a run directory that describes the run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.storage.checkpoint import load_checkpoint

RUN = dict(epochs=1, batch_size=8, progress=False, device="cpu", deterministic=True)


def data():
    return fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=32, test_size=8, val_fraction=0.25
    )


def lenet():
    return fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)


def frozen_after_fit(model, tmp_path, **options):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = fk.Trainer(model, data(), output_dir=str(tmp_path / "run"), **RUN, **options)
    trainer.fit()
    return trainer, {k for k, v in model.state_dict().items() if torch.equal(before[k], v)}


def test_a_strategy_applied_before_the_trainer_is_kept(tmp_path):
    model = lenet()
    fk.apply_strategy(model, "linear_probe")
    _, unchanged = frozen_after_fit(model, tmp_path)
    head = fk.model_info(model).head
    assert not any(k.startswith(head + ".") for k in unchanged)
    assert {k for k in model.state_dict() if not k.startswith(head + ".")} <= unchanged
    config = fk.load_config(tmp_path / "run" / "config.toml")
    assert config.finetune.strategy == "linear_probe"


def test_requires_grad_set_by_hand_is_kept_and_recorded(tmp_path, capsys):
    model = lenet()
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(("fc2", "fc3")))
    _, unchanged = frozen_after_fit(model, tmp_path)
    assert {k for k in model.state_dict() if k.startswith(("conv", "fc1"))} <= unchanged
    config = fk.load_config(tmp_path / "run" / "config.toml")
    assert config.finetune.strategy == "train_only" and config.finetune.options == {"names": ["fc2", "fc3"]}
    # the CLI rebuilds the same freezing from the run directory
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "run" / "config.toml"),
                "--output-dir",
                str(tmp_path / "again"),
                "--no-test",
            ]
        )
        == 0
    )
    state = load_checkpoint(tmp_path / "again" / "last.ckpt")
    assert state["freezing"]["strategy"] == "train_only"


def test_a_strategy_given_to_the_trainer_wins(tmp_path):
    model = lenet()
    fk.apply_strategy(model, "linear_probe")
    _, unchanged = frozen_after_fit(model, tmp_path, strategy="full")
    assert not unchanged - {k for k in model.state_dict() if "num_batches" in k}


def test_half_frozen_modules_are_refused_before_any_work(tmp_path):
    model = lenet()
    model.fc3.weight.requires_grad_(False)
    with pytest.raises(fk.ConfigError, match="some parameters frozen and others not"):
        fk.Trainer(model, data(), output_dir=str(tmp_path / "run"), **RUN).fit()
    assert not (tmp_path / "run").exists()


def test_strategy_options_without_a_strategy_are_refused_before_any_work(tmp_path):
    with pytest.raises(fk.ConfigError, match="no strategy takes them"):
        fk.Trainer(lenet(), data(), output_dir=str(tmp_path / "run"), options={"n": 2}, **RUN).fit()
    assert not (tmp_path / "run").exists()


class Plain(nn.Module):
    def __init__(self, outputs=3):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 16), nn.ReLU(), nn.Linear(16, outputs))

    def forward(self, x):
        return self.net(x)


def test_a_plain_module_trains_checkpoints_resumes_and_is_named(tmp_path, capsys):
    torch.manual_seed(0)
    model = Plain()
    trainer = fk.Trainer(model, data(), output_dir=str(tmp_path / "run"), **{**RUN, "epochs": 2}, max_steps=4)
    trainer.fit()
    torch.manual_seed(0)
    full = Plain()
    fk.Trainer(full, data(), output_dir=str(tmp_path / "full"), **{**RUN, "epochs": 2}).fit()
    torch.manual_seed(1)
    again = Plain()  # other initial weights: the checkpoint brings the trained ones
    fk.Trainer(again, data(), **{**RUN, "epochs": 2}).fit(resume=tmp_path / "run" / "last.ckpt")
    for key, value in full.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    config = fk.load_config(tmp_path / "run" / "config.toml")
    assert config.model.name.endswith("test_run_description.Plain")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 2
    assert "custom nn.Module" in capsys.readouterr().err
    with pytest.raises(fk.CheckpointError, match="custom model"):
        fk.export(tmp_path / "run", tmp_path / "export")
    report = fk.Trainer(again, data(), device="cpu").test(print_report=False)
    assert report.support == 8


def test_a_module_with_the_wrong_outputs_is_refused_before_any_work(tmp_path):
    with pytest.raises(fk.ShapeError, match=r"logits of shape \(N, 3\)"):
        fk.Trainer(Plain(outputs=5), data(), output_dir=str(tmp_path / "run"), **RUN).fit()
    assert not (tmp_path / "run").exists()


def test_optimizer_options_pass_through_and_are_checked(tmp_path):
    trainer = fk.Trainer(
        lenet(),
        data(),
        optimizer="adamw",
        lr=1e-3,
        betas=(0.8, 0.99),
        eps=1e-6,
        amsgrad=True,
        output_dir=str(tmp_path / "run"),
        **RUN,
    )
    trainer.fit()
    group = trainer.optimizer.param_groups[0]
    assert (group["betas"], group["eps"], group["amsgrad"]) == ((0.8, 0.99), 1e-6, True)
    assert fk.load_config(tmp_path / "run" / "config.toml").optim.optimizer_options["amsgrad"] is True
    with pytest.raises(fk.ConfigError, match="unknown option 'amsgrd'"):
        fk.Trainer(lenet(), data(), optimizer="adamw", amsgrd=True)
    with pytest.raises(fk.ConfigError, match="'sgd' has no option 'amsgrad'"):
        fk.Trainer(
            lenet(), data(), optimizer_options={"amsgrad": True}, output_dir=str(tmp_path / "x"), **RUN
        ).fit()
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "metrics, match",
    [(["f2"], "Unknown metric 'f2'"), (["top_k_accuracy"], "k=5 .*3 classes|k must|classes")],
)
def test_validation_metrics_are_checked_before_any_work(tmp_path, metrics, match):
    with pytest.raises(fk.FinetuneKitError, match=match):
        fk.Trainer(lenet(), data(), metrics=metrics, output_dir=str(tmp_path / "run"), **RUN).fit()
    assert not (tmp_path / "run").exists()


def test_an_occupied_directory_without_a_checkpoint_is_not_offered_for_resume(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("")
    with pytest.raises(fk.OutputDirError) as info:
        fk.Trainer(lenet(), data(), output_dir=str(tmp_path / "run"), **RUN).fit()
    assert "Resume it" not in str(info.value) and "--overwrite" in str(info.value)


def test_none_unsets_an_optional_key():
    config = fk.apply_overrides(fk.RunConfig(), ["model.weights=none", "train.max_steps=None"])
    assert (config.model.weights, config.train.max_steps) == (None, None)
    assert fk.RunConfig.from_dict({"data": {"preset": "none"}}).data.preset == "none"  # a real preset
