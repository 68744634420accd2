"""finetune_kit.runtime.threads: the CPU thread policy, cgroup quotas, and applying a count."""

from __future__ import annotations

import os

import pytest
import torch

from finetune_kit.errors import ConfigError
from finetune_kit.runtime.threads import cgroup_cpu_quota, plan_threads, usable_cpus, use_threads


def _auto(**machine):
    defaults = {"usable": 2, "load": 0.2, "torch_threads": 2, "machine_cpus": 2}
    return plan_threads("auto", **(defaults | machine))


def test_auto_uses_every_usable_cpu_on_a_quiet_machine():
    plan = _auto()
    assert plan.threads == 2
    assert plan.describe() == "CPU threads: 2 (auto: 2 usable CPUs, load average 0.2)"


@pytest.mark.parametrize(("load", "threads"), [(0.4, 2), (0.6, 1), (1.4, 1), (1.6, 1), (7.5, 1)])
def test_auto_leaves_the_cpus_other_jobs_keep_busy(load, threads):
    # idle CPUs = round(2 - load), and never fewer than one thread
    assert _auto(load=load).threads == threads


def test_auto_on_a_bigger_machine_counts_idle_cpus():
    assert _auto(usable=16, torch_threads=16, machine_cpus=16, load=5.0).threads == 11


def test_auto_never_exceeds_torch_setting_nor_usable_cpus():
    plan = _auto(torch_threads=1)
    assert plan.threads == 1 and "torch set to 1" in plan.describe()
    assert _auto(usable=4, torch_threads=8, machine_cpus=4, load=0.0).threads == 4


def test_auto_ignores_the_machine_load_when_the_process_has_a_subset_of_cpus():
    # four CPUs of a 64-CPU machine: its load average says nothing about those four
    plan = _auto(usable=4, torch_threads=64, machine_cpus=64, load=60.0)
    assert plan.threads == 4
    assert plan.describe() == "CPU threads: 4 (auto: 4 usable CPUs, 64 on the machine)"


def test_an_explicit_count_is_used_as_given():
    assert plan_threads(1, usable=2).describe() == "CPU threads: 1 (train.threads = 1)"
    over = plan_threads(8, usable=2)
    assert over.threads == 8 and "more than the 2 usable CPUs" in over.describe()


@pytest.mark.parametrize("bad", [0, -1, "many", "2", 1.5, True])
def test_a_bad_setting_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="train.threads"):
        plan_threads(bad, usable=2)


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cgroup_cpu_quota(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_no_or_unreadable_cgroup_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_usable_cpus_applies_the_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU still runs one thread
    assert usable_cpus(tmp_path) == 1


def test_use_threads_sets_and_restores_torch_threads():
    before = torch.get_num_threads()
    with use_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), use_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
