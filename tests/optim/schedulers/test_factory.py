"""Every schedule, point by point, against its formula and against torch's own schedulers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tls

from finetune_kit.errors import ConfigError, UnknownNameError
from finetune_kit.optim import (
    SCHEDULERS,
    add_param_group,
    create_optimizer,
    create_scheduler,
    list_schedulers,
    register_scheduler,
)
from finetune_kit.optim.schedulers.base import Scheduler

SETTINGS = settings(max_examples=60, deadline=None)
BASE_LR = 0.2


def make_optimizer(name="sgd", lr=BASE_LR, mults=(1.0,)):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in mults]
    groups = [{"params": [p], "lr_mult": m} for p, m in zip(params, mults, strict=True)]
    return create_optimizer(groups, name, lr=lr)


def lrs_over(sched, steps, metrics=None):
    """The lrs of every group before each step, for ``steps`` steps."""
    out = []
    for i in range(steps):
        out.append(sched.get_last_lr())
        sched.step(None if metrics is None else metrics[i])
    return out


# --------------------------------------------------------------------------- formulas
def warmup(t, w, s):
    return 1.0 if w == 0 else s + (1 - s) * min(t / w, 1.0)


def schedule(name, t, epochs, spe, opts):
    """The documented formulas, written independently of the implementation."""
    e = t // spe
    total = epochs * spe
    if name == "constant":
        return 1.0
    if name == "step":
        return opts["gamma"] ** (e // opts["step_size"])
    if name == "multistep":
        return opts["gamma"] ** len([m for m in opts["milestones"] if m <= e])
    if name == "cosine":
        m = opts["eta_min"] / BASE_LR
        return m + (1 - m) * (1 + math.cos(math.pi * min(t, total) / total)) / 2
    raise AssertionError(name)


OPTIONS = {
    "constant": st.just({}),
    "step": st.fixed_dictionaries(
        {"step_size": st.integers(1, 3), "gamma": st.sampled_from([0.1, 0.5, 1.0])}
    ),
    "multistep": st.fixed_dictionaries(
        {
            "milestones": st.lists(st.integers(0, 6), max_size=3).map(sorted),
            "gamma": st.sampled_from([0.1, 0.3]),
        }
    ),
    "cosine": st.fixed_dictionaries({"eta_min": st.sampled_from([0.0, 0.001, 0.05])}),
}


@SETTINGS
@given(
    st.sampled_from(sorted(OPTIONS)).flatmap(lambda n: st.tuples(st.just(n), OPTIONS[n])),
    st.integers(1, 6),
    st.integers(1, 7),
    st.sampled_from([0.0, 0.5, 1.0, 1.5]),
    st.sampled_from([0.0, 0.1, 0.5]),
)
def test_step_schedules_follow_their_formula_with_warmup(spec, epochs, spe, warm_epochs, start):
    name, opts = spec
    warm_epochs = min(warm_epochs, epochs)
    opt = make_optimizer(mults=(1.0, 0.1))
    sched = create_scheduler(
        opt,
        name,
        epochs=epochs,
        steps_per_epoch=spe,
        warmup_epochs=warm_epochs,
        warmup_start_factor=start,
        **opts,
    )
    assert sched.interval == "step"
    w = round(warm_epochs * spe)
    for t, lrs in enumerate(lrs_over(sched, epochs * spe + 3)):
        factor = warmup(t, w, start) * schedule(name, t, epochs, spe, opts)
        assert lrs == pytest.approx([BASE_LR * factor, BASE_LR * 0.1 * factor], rel=1e-12, abs=1e-15), t


def onecycle_reference(t, total, pct=0.3, div=25.0, final_div=1e4):
    """OneCycleLR's formula (two phases, cosine), as the fraction of the peak lr."""
    initial, final = 1 / div, 1 / div / final_div
    up = pct * total - 1
    t = min(t, total - 1)
    if t <= up:
        start, end, frac = initial, 1.0, t / up
    else:
        start, end, frac = 1.0, final, (t - up) / (total - 1 - up)
    return end + (start - end) / 2 * (math.cos(math.pi * frac) + 1)


@SETTINGS
@given(st.integers(1, 5), st.integers(4, 20), st.sampled_from([0.0, 0.5]))
def test_onecycle_follows_the_formula_with_warmup(epochs, spe, warm_epochs):
    opt = make_optimizer()
    sched = create_scheduler(opt, "onecycle", epochs=epochs, steps_per_epoch=spe, warmup_epochs=warm_epochs)
    total, w = epochs * spe, round(warm_epochs * spe)
    for t, (lr,) in enumerate(lrs_over(sched, total + 2)):
        assert lr == pytest.approx(
            BASE_LR * warmup(t, w, 0.0) * onecycle_reference(t, total), rel=1e-12, abs=1e-15
        )


# --------------------------------------------------------------------------- against torch
def torch_lrs(opt, sched, steps, metrics=None):
    out = []
    for i in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[i])
    return out


@pytest.mark.parametrize(
    "options",
    [
        {"pct_start": 0.3},
        {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        {"anneal_strategy": "linear"},
        {"three_phase": True},
    ],
)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_onecycle_matches_torch_lr_and_momentum(options, optimizer):
    epochs, spe = 3, 17
    total = epochs * spe
    ours = make_optimizer(optimizer)
    sched = create_scheduler(ours, "onecycle", epochs=epochs, steps_per_epoch=spe, **options)
    theirs = make_optimizer(optimizer)
    ref = tls.OneCycleLR(theirs, max_lr=BASE_LR, total_steps=total, **options)
    key = "betas" if optimizer == "adam" else "momentum"
    for _ in range(total):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        got, want = ours.param_groups[0][key], theirs.param_groups[0][key]
        assert got == pytest.approx(want, rel=1e-12)
        theirs.step()
        ref.step()
        sched.step()


@pytest.mark.parametrize("spe", [1, 3])
def test_step_and_multistep_match_torch_per_epoch(spe):
    epochs = 12
    cases = [
        ("step", {"step_size": 3, "gamma": 0.5}, tls.StepLR, {"step_size": 3, "gamma": 0.5}),
        ("multistep", {"milestones": [2, 5, 9]}, tls.MultiStepLR, {"milestones": [2, 5, 9]}),
    ]
    for name, ours_opts, cls, their_opts in cases:
        ours = make_optimizer()
        sched = create_scheduler(ours, name, epochs=epochs, steps_per_epoch=spe, **ours_opts)
        per_step = lrs_over(sched, epochs * spe)
        theirs = make_optimizer()
        per_epoch = torch_lrs(theirs, cls(theirs, **their_opts), epochs)
        assert [lr for (lr,) in per_step] == pytest.approx(
            [lr for lr in per_epoch for _ in range(spe)], rel=1e-12
        )


def test_cosine_matches_torch_per_step():
    epochs, spe, eta_min = 4, 9, 0.01
    ours = make_optimizer()
    sched = create_scheduler(ours, "cosine", epochs=epochs, steps_per_epoch=spe, eta_min=eta_min)
    theirs = make_optimizer()
    ref = tls.CosineAnnealingLR(theirs, T_max=epochs * spe, eta_min=eta_min)
    want = torch_lrs(theirs, ref, epochs * spe + 1)
    assert [lr for (lr,) in lrs_over(sched, epochs * spe + 1)] == pytest.approx(want, rel=1e-9)


def test_warmup_is_torch_chained_linear_lr_times_the_schedule():
    epochs, spe, start = 5, 6, 0.1
    ours = make_optimizer()
    sched = create_scheduler(
        ours, "cosine", epochs=epochs, steps_per_epoch=spe, warmup_epochs=2, warmup_start_factor=start
    )
    theirs = make_optimizer()
    ref = tls.ChainedScheduler(
        [
            tls.LinearLR(theirs, start_factor=start, total_iters=2 * spe),
            tls.CosineAnnealingLR(theirs, T_max=epochs * spe),
        ]
    )
    want = torch_lrs(theirs, ref, epochs * spe)
    assert [lr for (lr,) in lrs_over(sched, epochs * spe)] == pytest.approx(want, rel=1e-9)


@SETTINGS
@given(
    st.lists(st.floats(0.0, 2.0), min_size=1, max_size=25),
    st.sampled_from(["min", "max"]),
    st.integers(0, 3),
    st.integers(0, 2),
    st.sampled_from(["rel", "abs"]),
    st.sampled_from([0.0, 0.01]),
)
def test_plateau_matches_torch(metrics, mode, patience, cooldown, threshold_mode, min_lr):
    options = {
        "mode": mode,
        "patience": patience,
        "cooldown": cooldown,
        "factor": 0.5,
        "threshold_mode": threshold_mode,
        "threshold": 0.05,
        "min_lr": min_lr,
    }
    ours = make_optimizer()
    sched = create_scheduler(ours, "plateau", epochs=30, steps_per_epoch=5, **options)
    assert sched.interval == "epoch"
    theirs = make_optimizer()
    ref = tls.ReduceLROnPlateau(theirs, **options)
    want = [*torch_lrs(theirs, ref, len(metrics), metrics), theirs.param_groups[0]["lr"]]
    got = [*lrs_over(sched, len(metrics), metrics), sched.get_last_lr()]
    assert [lr for (lr,) in got] == pytest.approx(want, rel=1e-12)


def test_plateau_warmup_counts_in_epochs():
    opt = make_optimizer()
    sched = create_scheduler(
        opt, "plateau", epochs=10, steps_per_epoch=100, warmup_epochs=2, warmup_start_factor=0.5, patience=100
    )
    got = [lr for (lr,) in lrs_over(sched, 4, [1.0] * 4)]
    assert got == pytest.approx([0.1, 0.15, 0.2, 0.2])


# --------------------------------------------------------------------------- groups, resume
@pytest.mark.parametrize("name", list_schedulers())
@pytest.mark.parametrize("via", ["optim", "scheduler"])
def test_a_group_added_mid_run_is_scheduled(name, via):
    epochs, spe = 4, 5
    opt = make_optimizer()
    sched = create_scheduler(opt, name, epochs=epochs, steps_per_epoch=spe, warmup_epochs=1)
    metrics = [1.0 / (i + 1) if i < 3 else 1.0 for i in range(epochs * spe)]
    is_epoch = sched.interval == "epoch"
    ticks = epochs if is_epoch else epochs * spe
    lrs_over(sched, ticks // 2, metrics if is_epoch else None)
    new = {"params": [torch.nn.Parameter(torch.zeros(3))], "lr_mult": 0.25}
    if via == "optim":
        add_param_group(opt, sched, new)
    else:
        sched.add_param_group(new)
    for lr_first, lr_new in lrs_over(
        sched, ticks - ticks // 2 + 1, [*metrics[ticks // 2 :], 1.0] if is_epoch else None
    ):
        assert lr_new == pytest.approx(0.25 * lr_first, rel=1e-12)
    if name == "onecycle":
        assert opt.param_groups[1]["momentum"] == opt.param_groups[0]["momentum"]


@pytest.mark.parametrize("name", list_schedulers())
def test_state_dict_resumes_exactly(name):
    epochs, spe = 5, 4
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98, 1.2, 1.1, 1.3, 1.0]

    def build():
        opt = make_optimizer(mults=(1.0, 0.5))
        extra = {"patience": 1} if name == "plateau" else {}
        return opt, create_scheduler(opt, name, epochs=epochs, steps_per_epoch=spe, warmup_epochs=1, **extra)

    is_epoch = name == "plateau"
    ticks = len(metrics) if is_epoch else epochs * spe
    opt, sched = build()
    straight = lrs_over(sched, ticks, metrics if is_epoch else None)
    opt, sched = build()
    first = lrs_over(sched, 3, metrics[:3] if is_epoch else None)
    saved = (opt.state_dict(), sched.state_dict())
    opt, sched = build()
    opt.load_state_dict(saved[0])
    sched.load_state_dict(saved[1])
    rest = lrs_over(sched, ticks - 3, metrics[3:] if is_epoch else None)
    assert first + rest == straight


def test_groups_without_lr_mult_keep_their_ratio():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1]}, {"params": [p2], "lr": 0.05}], lr=0.1)
    sched = create_scheduler(opt, "step", epochs=2, steps_per_epoch=1, step_size=1)
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.01, 0.005])


# --------------------------------------------------------------------------- errors, registry
def test_errors_name_the_problem():
    opt = make_optimizer()
    with pytest.raises(ConfigError, match="step\\(metric\\)"):
        create_scheduler(opt, "plateau", epochs=3, steps_per_epoch=2).step()
    with pytest.raises(ConfigError, match="Did you mean 'step_size'"):
        create_scheduler(opt, "step", epochs=3, steps_per_epoch=2, stepsize=1)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        create_scheduler(opt, "cosine", epochs=3, steps_per_epoch=2, warmup_epochs=4)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        create_scheduler(opt, "cosine", epochs=3, steps_per_epoch=0)
    with pytest.raises(ConfigError, match="milestones"):
        create_scheduler(opt, "multistep", epochs=3, steps_per_epoch=2, milestones=[3, 1])
    adagrad = create_optimizer([torch.nn.Parameter(torch.zeros(1))], "adagrad", lr=0.1)
    with pytest.raises(ConfigError, match="cycle_momentum=False"):
        create_scheduler(adagrad, "onecycle", epochs=1, steps_per_epoch=10)
    create_scheduler(adagrad, "onecycle", epochs=1, steps_per_epoch=10, cycle_momentum=False)
    with pytest.raises(UnknownNameError, match="cosine"):
        create_scheduler(opt, "cosin", epochs=1, steps_per_epoch=1)


@pytest.mark.parametrize("name", list_schedulers())
def test_every_registered_scheduler_builds_and_steps(name):
    opt = make_optimizer()
    sched = create_scheduler(opt, name, epochs=2, steps_per_epoch=3)
    assert isinstance(sched, Scheduler) and sched.interval in ("step", "epoch")
    sched.step(0.5)
    assert all(lr >= 0 for lr in sched.get_last_lr())
    assert "t" in sched.state_dict()


def test_register_a_custom_scheduler():
    @register_scheduler("halving")
    class Halving(Scheduler):
        def schedule(self, t):
            return 0.5**t

    try:
        opt = make_optimizer()
        sched = create_scheduler(opt, "halving", epochs=1, steps_per_epoch=3)
        assert [lr for (lr,) in lrs_over(sched, 3)] == pytest.approx([0.2, 0.1, 0.05])
    finally:
        SCHEDULERS.unregister("halving")
