"""How many CPU threads torch uses: a policy that does not oversubscribe the machine.

torch starts one intra-op thread per core. On a machine shared with other jobs that is too
many: its threads wait for each other at every operation, and a thread that the scheduler has
set aside holds up all the others (two threads on two busy cores trained a small ConvNet 2.5x
slower than one thread). :func:`plan_threads` picks the count for a run:

* a number (``train.threads = 2``) is used as given;
* ``"auto"`` (the default) takes the CPUs this process may run on -- its CPU affinity and its
  cgroup CPU quota (containers, CI runners) -- no more than torch's own setting (which follows
  ``OMP_NUM_THREADS``), and, when those CPUs are the whole machine, no more than the CPUs the
  1-minute load average leaves idle (at least one).

:func:`use_threads` applies a count for a block and restores torch's setting afterwards. The
plan says in one line what it chose and why (:meth:`ThreadPlan.describe`), which the Trainer
prints when a run starts on the CPU.

Example:
    >>> plan = plan_threads(3, usable=2)
    >>> plan.threads, plan.describe()
    (3, 'CPU threads: 3 (train.threads = 3; more than the 2 usable CPUs, expect contention)')
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune_kit.errors import ConfigError

__all__ = ["AUTO", "ThreadPlan", "cgroup_cpu_quota", "plan_threads", "usable_cpus", "use_threads"]

AUTO = "auto"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadPlan:
    """The intra-op thread count chosen for a run, and why.

    Attributes:
        threads: the count to give ``torch.set_num_threads``.
        setting: what was asked for: a number, or ``"auto"``.
        usable: CPUs this process may run on (affinity and cgroup quota).
        reason: what decided the count, in a few words.

    Example:
        >>> ThreadPlan(1, "auto", 2, "load average 1.4 leaves 1 idle").describe()
        'CPU threads: 1 (auto: 2 usable CPUs, load average 1.4 leaves 1 idle)'
    """

    threads: int
    setting: int | str
    usable: int
    reason: str

    def describe(self) -> str:
        """One line for the start of a run: the count, what was asked, and why."""
        if self.setting == AUTO:
            return f"CPU threads: {self.threads} (auto: {self.usable} usable CPUs, {self.reason})"
        return f"CPU threads: {self.threads} (train.threads = {self.setting}{self.reason})"


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup quota allows this process, or None when unlimited.

    Reads cgroup v2 (``cpu.max``: ``"200000 100000"`` is two CPUs) or v1
    (``cpu/cpu.cfs_quota_us`` over ``cpu/cpu.cfs_period_us``; ``-1`` is unlimited).

    Args:
        root: the cgroup file system (the default is where Linux mounts it).

    Returns:
        The quota in CPUs (may be fractional), or None (no quota, or not Linux).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "cpu.max").write_text("150000 100000\\n")
        >>> cgroup_cpu_quota(root)
        1.5
    """
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():
            quota = int((v1 / "cpu.cfs_quota_us").read_text())
            period = int((v1 / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):  # unreadable or in an unknown format: no quota known
        return None
    return None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on: its CPU affinity, capped by the cgroup CPU quota.

    Args:
        root: the cgroup file system.

    Returns:
        At least 1.

    Example:
        >>> 1 <= usable_cpus() <= (os.cpu_count() or 1)
        True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity API
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(cpus, 1)


def plan_threads(
    setting: int | str = AUTO,
    *,
    usable: int | None = None,
    load: float | None = None,
    torch_threads: int | None = None,
    machine_cpus: int | None = None,
) -> ThreadPlan:
    """Choose the intra-op thread count for a run (the policy is in the module docstring).

    Args:
        setting: a positive number of threads, or ``"auto"``.
        usable: CPUs this process may use (default: :func:`usable_cpus`).
        load: the 1-minute load average (default: ``os.getloadavg()``).
        torch_threads: torch's current setting (default: ``torch.get_num_threads()``).
        machine_cpus: CPUs of the whole machine (default: ``os.cpu_count()``).

    Returns:
        The :class:`ThreadPlan`.

    Raises:
        ConfigError: ``setting`` is neither a positive integer nor ``"auto"``.

    Example:
        >>> plan_threads("auto", usable=2, load=0.3, torch_threads=2, machine_cpus=2).threads
        2
        >>> plan_threads("auto", usable=2, load=5.0, torch_threads=2, machine_cpus=2).describe()
        'CPU threads: 1 (auto: 2 usable CPUs, load average 5.0 leaves 0 idle)'
    """
    usable = usable_cpus() if usable is None else usable
    if isinstance(setting, int) and not isinstance(setting, bool):
        if setting < 1:
            raise ConfigError(f"train.threads must be >= 1 or 'auto', got {setting!r}.")
        extra = f"; more than the {usable} usable CPUs, expect contention" if setting > usable else ""
        return ThreadPlan(setting, setting, usable, extra)
    if setting != AUTO:
        raise ConfigError(
            f"train.threads must be a positive integer or 'auto', got {setting!r}. "
            "Use e.g. threads = 2, or threads = 'auto' to fit the machine."
        )
    torch_threads = torch.get_num_threads() if torch_threads is None else torch_threads
    machine_cpus = (os.cpu_count() or usable) if machine_cpus is None else machine_cpus
    limit = max(1, min(usable, torch_threads))
    why = f"torch set to {torch_threads}" if torch_threads < usable else None
    if usable < machine_cpus:  # the load average counts CPUs this process cannot use
        return ThreadPlan(limit, AUTO, usable, why or f"{machine_cpus} on the machine")
    load = os.getloadavg()[0] if load is None else load
    idle = max(0, math.floor(machine_cpus - load + 0.5))
    threads = max(1, min(limit, idle))
    if threads < limit:
        why = f"load average {load:.1f} leaves {idle} idle"
    return ThreadPlan(threads, AUTO, usable, why or f"load average {load:.1f}")


@contextlib.contextmanager
def use_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore torch's setting.

    Args:
        count: threads for the block.

    Example:
        >>> before = torch.get_num_threads()
        >>> with use_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
