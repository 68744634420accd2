"""Trials that are DDP runs: under torchrun, rank 0 runs the study and the other ranks follow.

``torchrun --nproc_per_node=4 -m finetune_kit tune --config FILE`` starts four processes. Rank 0
talks to the study's storage: it asks for a trial, sends the trial's values to the other
ranks, and all four train that trial together as one DDP run; after each validation rank 0
asks the pruner and sends its answer, so every rank stops at the same epoch. When the study is
done rank 0 sends a stop, and the other ranks leave. Messages travel over a Gloo group of
their own, beside the group that trains.

Example:
    >>> coordinator = Coordinator.for_config("cpu")
    >>> coordinator.is_main, coordinator.share("values")
    (True, 'values')
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from finetune_kit.runtime import resolve_device
from finetune_kit.runtime.distributed import DistEnv, init_distributed
from finetune_kit.tuning.extra import require_optuna

__all__ = ["Coordinator"]


@dataclass
class Coordinator:
    """Who asks the study for trials (rank 0), and how the others hear about them.

    Args:
        env: this process's place in a torchrun launch.
        group: the Gloo process group the messages use (None: one process).
        optuna: the optuna module (rank 0 and the others raise the same ``TrialPruned``).
    """

    env: DistEnv
    group: Any = None
    optuna: ModuleType | None = None

    @classmethod
    def for_config(cls, device: str) -> Coordinator:
        """The coordinator of this process; under torchrun it joins the process group.

        Args:
            device: ``train.device`` of the config (the training group uses NCCL on CUDA).
        """
        env = DistEnv.from_environ()
        group = None
        if env.is_distributed:
            import torch
            import torch.distributed as dist

            place = resolve_device(device)
            if place.type == "cuda":
                place = torch.device("cuda", env.local_rank)
            init_distributed(env, place)
            group = dist.new_group(backend="gloo")
        return cls(env=env, group=group, optuna=require_optuna())

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that talks to the study."""
        return self.env.is_main

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank (``obj`` itself in one process)."""
        if self.group is None:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]
