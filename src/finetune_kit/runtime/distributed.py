"""torchrun / DistributedDataParallel glue: the same Trainer on one process or many.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``), the Trainer initialises the process group (NCCL on CUDA, Gloo on CPU), pins
the local GPU, wraps the model in ``DistributedDataParallel`` and gives each rank its shard of
every epoch. Parameters that are frozen when the wrapper is built are not registered for
gradient sync, so frozen backbones need no ``find_unused_parameters``; after an unfreeze the
wrapper is rebuilt. Metrics are reduced as sums of counts, and only rank 0 writes files.

Example:
    >>> env = DistEnv.from_environ({})
    >>> env.is_distributed, env.rank, env.world_size
    (False, 0, 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from finetune_kit.errors import ConfigError, DeviceError

__all__ = [
    "DistEnv",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "init_distributed",
    "teardown",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a torchrun launch.

    Attributes:
        rank: global rank (0 when not distributed).
        world_size: number of processes (1 when not distributed).
        local_rank: rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes files (rank 0)."""
        return self.rank == 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (as set by torchrun).

        Raises:
            ConfigError: the variables are set but inconsistent (e.g. ``RANK`` >= ``WORLD_SIZE``).
        """
        environ = os.environ if environ is None else environ
        if "WORLD_SIZE" not in environ:
            return cls()
        try:
            world = int(environ["WORLD_SIZE"])
            rank = int(environ.get("RANK", "0"))
            local = int(environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ConfigError(
                "RANK, WORLD_SIZE and LOCAL_RANK must be integers; launch with torchrun."
            ) from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ConfigError(
                f"Inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}."
            )
        return cls(rank=rank, world_size=world, local_rank=local)


def init_distributed(env: DistEnv, device: torch.device) -> bool:
    """Initialise the default process group for ``env`` if it is not yet initialised.

    Args:
        env: the launch environment.
        device: this process's device; CUDA uses NCCL, the CPU Gloo.

    Returns:
        True when this call created the group (the caller then owns its teardown).

    Raises:
        DeviceError: ``MASTER_ADDR``/``MASTER_PORT`` are missing (not launched by torchrun).
    """
    if not env.is_distributed or dist.is_initialized():
        return False
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise DeviceError(
            f"WORLD_SIZE={env.world_size} is set but {', '.join(missing)} is not: launch with "
            "torchrun (torchrun --nproc_per_node=N -m finetune_kit train ...)."
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return True


def teardown() -> None:
    """Destroy the default process group if there is one (safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it (no-op in a single process)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel over its trainable parameters.

    Frozen parameters (``requires_grad=False``) are left out of gradient sync by DDP itself,
    so no ``find_unused_parameters`` is needed; call again after an unfreeze.
    """
    if not _active():
        return model
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("Every parameter is frozen: there is nothing to train under DDP.")
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
