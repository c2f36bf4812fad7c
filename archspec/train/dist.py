"""Several processes: torchrun starts them, DistributedDataParallel keeps them in step.

archspec has no launcher of its own. ``archspec train --nproc N`` runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m archspec train ...``;
on several machines, run torchrun yourself around ``-m archspec train`` (docs/training.md).
Each process reads its rank from the environment torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK); the backend is gloo on the CPU and nccl on CUDA.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The world torchrun describes in the environment; one process without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device) -> None:
    import torch.distributed as dist

    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown(world: World) -> None:
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    import torch.distributed as dist

    if world.distributed:
        dist.barrier()


def all_sum(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over the processes (the values themselves in one process)."""
    if not world.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def any_flag(world: World, flag: bool, device: torch.device) -> bool:
    """True on every process when it is true on any: all stop at the same step."""
    return all_sum(world, [1.0 if flag else 0.0], device)[0] > 0 if world.distributed else flag


def replicas_identical(world: World, model: Any, device: torch.device) -> bool:
    """Whether every process holds the same parameters and buffers, bit for bit."""
    if not world.distributed:
        return True
    import hashlib

    import torch
    import torch.distributed as dist

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    mine = torch.tensor([int.from_bytes(h.digest()[:7], "little")], dtype=torch.int64, device=device)
    got = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(got, mine)
    return all(int(g) == int(mine) for g in got)


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The command that runs ``archspec train ARGS`` in ``nproc`` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "archspec", "train", *args]
