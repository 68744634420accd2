"""FreezePlan: frozen means bit-identical, optimizer groups by identity, exact resume."""

from __future__ import annotations

import io
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import finetune_kit as fk
from finetune_kit.callbacks import Callback
from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.freezing import FreezePlan, apply_strategy, create_strategy
from finetune_kit.models.info import ModelInfo, set_model_info
from finetune_kit.models.stages import model_stages
from finetune_kit.optim import add_param_group, create_optimizer, create_scheduler, param_groups

STAGES = ("stem", "block1", "block2", "head")


class TinyNet(nn.Module):
    """Four stages with BatchNorm and dropout; carries a ModelInfo like built-in models."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.block2 = nn.Sequential(
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
        )
        self.fc = nn.Linear(8, num_classes)
        set_model_info(
            self,
            ModelInfo(
                name="tiny",
                num_classes=num_classes,
                in_channels=1,
                input_size=(8, 8),
                min_input_size=(4, 4),
                head="fc",
                stages=(
                    ("stem", ("stem",)),
                    ("block1", ("block1",)),
                    ("block2", ("block2",)),
                    ("head", ("fc",)),
                ),
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block2(self.block1(self.stem(x))))


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _group_ids(opt: torch.optim.Optimizer) -> list[int]:
    return [id(p) for g in opt.param_groups for p in g["params"]]


def _check_groups(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    """Every trainable parameter in exactly one group, no frozen one in any (by identity)."""
    ids = _group_ids(opt)
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


def _step(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, sched=None) -> None:
    model.train()
    x = torch.randn(6, 1, 8, 8, generator=gen)
    y = torch.randint(0, 3, (6,), generator=gen)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in model.parameters():
        assert (p.grad is None) == (not p.requires_grad)
    opt.step()
    if sched is not None:
        sched.step()


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 3),
    optimizer=st.sampled_from(["sgd", "adamw"]),
    steps=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_frozen_stages_stay_bit_identical(n, optimizer, steps, seed):
    torch.manual_seed(seed)
    model = TinyNet()
    plan = apply_strategy(model, "freeze_first", n=n)
    frozen = [s for s in model_stages(model)[:n]]
    before = {m: _snapshot(mod) for s in frozen for m, mod in zip(s.module_names, s.modules, strict=True)}
    live = _snapshot(model.fc)
    opt = create_optimizer(model, optimizer, lr=0.1, weight_decay=0.1, lr_multipliers=plan.lr_multipliers())
    _check_groups(model, opt)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        _step(model, opt, gen)
    for name, state in before.items():  # weights and BatchNorm running stats alike
        after = model.get_submodule(name).state_dict()
        assert all(torch.equal(v, after[k]) for k, v in state.items()), name
    assert not torch.equal(live["weight"], model.fc.weight)


@pytest.mark.parametrize(
    "scheduler, options",
    [
        ("onecycle", {}),
        ("cosine", {}),
        ("cosine", {"warmup_epochs": 2}),
        ("step", {"step_size": 2}),
    ],
)
def test_unfrozen_groups_are_driven_by_the_scheduler(scheduler, options):
    torch.manual_seed(0)
    model = TinyNet()
    plan = apply_strategy(model, "gradual_unfreeze", every=1, decay=0.5)
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, lr_multipliers=plan.lr_multipliers())
    sched = create_scheduler(opt, scheduler, epochs=4, steps_per_epoch=2, **options)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(4):
        names = plan.on_epoch_start(model, epoch)
        if names:
            wanted = {id(p) for n, p in model.named_parameters() if n in names}
            for group in param_groups(model, weight_decay=5e-4, lr_multipliers=plan.lr_multipliers()):
                group["params"] = [p for p in group["params"] if id(p) in wanted]
                if group["params"]:
                    add_param_group(opt, sched, group)
        _check_groups(model, opt)
        for _ in range(2):
            _step(model, opt, gen, sched)
            for group in opt.param_groups:
                assert group["lr"] == pytest.approx(0.1 * group["lr_mult"] * sched.factor())
    assert sorted({g["lr_mult"] for g in opt.param_groups}) == [0.125, 0.25, 0.5, 1.0]


def _run(epochs: int, stop_after: int | None = None, state: bytes | None = None):
    """A loop following the Trainer's protocol; returns (model, checkpoint bytes or None)."""
    torch.manual_seed(0)
    model = TinyNet()
    plan = apply_strategy(model, "gradual_unfreeze", every=1)
    opt = create_optimizer(model, "adamw", lr=0.01, weight_decay=0.05, lr_multipliers=plan.lr_multipliers())
    sched = create_scheduler(opt, "onecycle", epochs=epochs, steps_per_epoch=3)
    added: list[list[str]] = []

    def add(names: list[str]) -> None:
        wanted = {id(p) for n, p in model.named_parameters() if n in names}
        for group in param_groups(model, weight_decay=0.05, lr_multipliers=plan.lr_multipliers()):
            group["params"] = [p for p in group["params"] if id(p) in wanted]
            if group["params"]:
                add_param_group(opt, sched, group)
        added.append(names)

    start = 0
    if state is not None:
        saved = torch.load(io.BytesIO(state), weights_only=True)
        model.load_state_dict(saved["model"])
        plan.load_state_dict(saved["freezing"])
        for names in saved["added"]:
            add(names)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        start = saved["epoch"]
    for epoch in range(start, epochs):
        names = plan.on_epoch_start(model, epoch)
        if names:
            add(names)
        gen = torch.Generator().manual_seed(epoch)
        torch.manual_seed(epoch)  # dropout (the Trainer restores the RNG states instead)
        for _ in range(3):
            _step(model, opt, gen, sched)
        if stop_after is not None and epoch + 1 == stop_after:
            buf = io.BytesIO()
            torch.save(
                {
                    "model": model.state_dict(),
                    "freezing": plan.state_dict(),
                    "added": added,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch + 1,
                },
                buf,
            )
            return model, buf.getvalue()
    return model, None


def test_resume_after_an_unfreeze_matches_an_uninterrupted_run():
    full, _ = _run(epochs=4)
    _, ckpt = _run(epochs=4, stop_after=2)  # the unfreeze of epoch 1 has happened
    resumed, _ = _run(epochs=4, state=ckpt)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


class _StopAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer) -> None:
        if trainer.state.epoch == self.epoch:
            trainer.request_stop("test: stop after an unfreeze")


def test_trainer_resume_after_an_unfreeze_matches_an_uninterrupted_run(tmp_path):
    data = fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=8, train_size=48, test_size=12, val_fraction=0
    )
    options = dict(
        epochs=4,
        batch_size=16,
        progress=False,
        strategy="gradual_unfreeze",
        options={"every": 1},
        optimizer="adamw",
        lr=0.01,
        scheduler="onecycle",
        seed=0,
    )

    def trainer(name: str, callbacks=()) -> fk.Trainer:
        torch.manual_seed(0)
        return fk.Trainer(
            TinyNet(), data, output_dir=str(tmp_path / name), callbacks=list(callbacks), **options
        )

    full = trainer("full")
    full.fit()
    stopped = trainer("stopped", [_StopAt(2)])
    stopped.fit()
    assert stopped.state.epoch == 2 and stopped.plan.level == 1
    resumed = trainer("resumed")
    resumed.fit(resume=tmp_path / "stopped" / "last.ckpt")
    assert resumed.plan.level == full.plan.level == 3
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    _check_groups(resumed.model, resumed.optimizer)
    assert "head" in (tmp_path / "full" / "trainable.txt").read_text()


def test_state_dict_round_trip_and_mismatches():
    model = TinyNet()
    plan = apply_strategy(model, "gradual_unfreeze", every=1)
    plan.on_epoch_start(model, 2)
    state = json.loads(json.dumps(plan.state_dict()))  # plain data
    assert state["level"] == 2 and state["strategy"] == "gradual_unfreeze"
    other = TinyNet()
    fresh = apply_strategy(other, "gradual_unfreeze", every=1)
    fresh.load_state_dict(state)
    assert fresh.trainable_names() == plan.trainable_names()
    assert other.stem[1].finetune_kit_keep_eval is True  # still frozen: kept in eval mode
    assert other.block1[1].finetune_kit_keep_eval is False  # unfrozen at level 2
    assert fresh.on_epoch_start(other, 2) == []  # already unfrozen
    with pytest.raises(CheckpointError, match="strategy 'gradual_unfreeze'"):
        apply_strategy(TinyNet(), "linear_probe").load_state_dict(state)
    with pytest.raises(CheckpointError, match="bn_policy"):
        apply_strategy(TinyNet(), "gradual_unfreeze", every=1, bn_policy="train").load_state_dict(state)
    with pytest.raises(CheckpointError, match="malformed"):
        fresh.load_state_dict({"strategy": "gradual_unfreeze"})
    bad = dict(state, trainable=[*state["trainable"], "nope.weight"])
    with pytest.raises(CheckpointError, match=r"nope.weight"):
        fresh.load_state_dict(bad)


def test_on_epoch_start_checks_the_model():
    model = TinyNet()
    plan = apply_strategy(model, "linear_probe")
    assert plan.on_epoch_start(model, 5) == []
    with pytest.raises(ConfigError, match="different model"):
        plan.on_epoch_start(TinyNet(), 0)


def test_summary_table_dict_and_files(tmp_path):
    model = TinyNet()
    plan = apply_strategy(model, "freeze_first", n=2)
    summary = plan.summary()
    table = summary.table()
    lines = table.splitlines()
    assert lines[0] == "strategy: freeze_first(n=2)   BatchNorm policy of frozen layers: eval"
    assert lines[1].split() == ["stage", "params", "trainable", "BatchNorm", "lr", "mult"]
    assert [line.split()[0] for line in lines[2:]] == [*STAGES, "total"]
    assert lines[2].split()[2:] == ["0", "eval", "-"]
    assert lines[4].split()[3:] == ["follows", "model", "1"]
    data = summary.to_dict()
    assert [s["stage"] for s in data["stages"]] == list(STAGES)
    assert data["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    paths = summary.save(tmp_path)
    assert json.loads(paths[1].read_text()) == data
    assert str(summary) == table
    assert "freeze_first(n=2)" in repr(plan)


def test_plan_param_groups_and_instance_use():
    model = TinyNet()
    plan = FreezePlan(model, create_strategy("discriminative_lr", decay=0.1))
    plan.apply()
    groups = plan.param_groups(weight_decay=0.01)
    assert sorted({g["lr_mult"] for g in groups}) == pytest.approx([0.001, 0.01, 0.1, 1.0])


def test_transfer_experiment_smoke(fashion_mnist_dir, tmp_path):
    """The example script runs end to end on tiny subsets of the real data."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "transfer_experiment.py"
    spec = importlib.util.spec_from_file_location("transfer_experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(
        ["--smoke", "--root", str(fashion_mnist_dir), "--out", str(tmp_path), "--strategies", "lora"]
    )
    assert [r["run"] for r in results] == ["scratch", "lora"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results)
    report = json.loads((tmp_path / "results_convnet_smoke.json").read_text())
    assert "| scratch |" in report["table"]
