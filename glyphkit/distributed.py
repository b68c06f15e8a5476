"""Several processes, one run: torchrun's environment -> torch.distributed, and the few collectives glyphkit needs.

`torchrun --nproc-per-node N -m glyphkit train ...` starts N copies of glyphkit with RANK, WORLD_SIZE, LOCAL_RANK
and LOCAL_WORLD_SIZE set; `setup` joins them into one process group (nccl on CUDA GPUs, gloo on the CPU). Each
rank trains on its own shard of every batch list (glyphkit.batches), DistributedDataParallel averages the
gradients, and rank 0 alone writes the run folder. Without torchrun, everything here is a no-op: one process is
rank 0 of a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_size_from_env() -> int:
    """The number of processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_by_torchrun() -> bool:
    return world_size_from_env() > 1


def is_main_process() -> bool:
    """Rank 0 (or no torchrun): true before the process group exists too, so start-up lines are printed once."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: torch.device) -> Processes:
    """Join the process group torchrun describes (once; later calls return the same answer)."""
    if not launched_by_torchrun():
        return Processes()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return processes()


def processes() -> Processes:
    """This process's rank and the world size (a world of one without torchrun)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Processes()
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_world_size() -> int:
    """Processes sharing this machine (torchrun's LOCAL_WORLD_SIZE): they share its CPU cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if processes().distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over all ranks (in place; unchanged in a world of one)."""
    if processes().distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_buffers(module: torch.nn.Module) -> None:
    """Average the floating-point buffers (batch-norm running statistics) over the ranks, in one all-reduce.

    DistributedDataParallel keeps the parameters equal; the running statistics each rank gathers from its own
    shard would drift apart, and then the ranks would validate, average (EMA) and save different networks."""
    world = processes()
    if not world.distributed:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world.world_size
    for b, synced in zip(buffers, flat.split([b.numel() for b in buffers])):
        b.copy_(synced.view_as(b))


def shard_bounds(n: int, world: Processes) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous share of n items (shares differ by at most one item)."""
    base, extra = divmod(n, world.world_size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (1 if world.rank < extra else 0)


def gather_shards(local: torch.Tensor, n: int, world: Processes) -> torch.Tensor:
    """Concatenate every rank's `shard_bounds` share of n rows back into all n rows, in order, on every rank.

    all_gather needs equal sizes, so shorter shares are padded for the exchange and the padding is cut off again:
    no row is counted twice."""
    if not world.distributed:
        return local
    per_rank = -(-n // world.world_size)
    # nccl exchanges tensors on this rank's GPU, gloo on the CPU
    comm_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype, device=comm_device)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(world.world_size)]
    dist.all_gather(parts, padded)
    sizes = [len(range(*shard_bounds(n, Processes(r, world.world_size)))) for r in range(world.world_size)]
    return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(local.device)
