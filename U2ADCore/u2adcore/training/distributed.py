"""Devices and process groups. The same `u2ad pretrain` runs alone or under
`torchrun --nproc-per-node N`: torchrun's environment variables switch DistributedDataParallel
on (NCCL on GPUs, gloo on CPU). Every rank draws the same random numbers for the global batch
and trains on its contiguous share of it, so N processes reproduce one process's weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import InputError


def resolve_device(preference: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error the user can fix."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"--device {preference}: no CUDA device is available (use --device cpu or auto)")
    if preference != "cpu" and not preference.startswith("cuda"):
        raise InputError(None, f"--device {preference}: expected auto, cpu or cuda")
    return torch.device(preference)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of n (sizes differ by at most one)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))


def init_from_env(device_preference: str = "auto") -> DistContext:
    """A DistContext for this process; joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_preference)
    if world <= 1:
        return DistContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, device=device)


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_ranks(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of a scalar over all ranks (for reporting the global loss)."""
    if not ctx.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
