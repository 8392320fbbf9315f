"""torchrun support: one process per device, rank 0 owns the run folder's bookkeeping."""

from __future__ import annotations

import os
import sys
from datetime import timedelta


def _group():
    """torch.distributed where a process group exists, else None. Without torch imported
    there is none, so the command line's reading paths never import torch."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    dist = _group()
    return dist.get_world_size() if dist else 1


def rank() -> int:
    dist = _group()
    return dist.get_rank() if dist else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (no-op otherwise).

    NCCL on CUDA, gloo on CPU. The long timeout lets ranks wait at a barrier while
    rank 0 runs a single-process stage.
    """
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=6))


def barrier() -> None:
    dist = _group()
    if dist:
        dist.barrier()


def device():
    """The process's torch device: its GPU under torchrun on CUDA, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(value):
    """Rank 0's `value` on every rank (itself where there is one process)."""
    dist = _group()
    if not dist:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(items: list) -> list:
    """This process's share of `items` under torchrun: every world_size-th, from its rank."""
    return items[rank()::world_size()]


def gather(value) -> list:
    """Every rank's `value`, in rank order (a one-item list in one process)."""
    dist = _group()
    if not dist:
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def shard_record(items_done_here: int) -> dict:
    """What a sharded stage's manifest says of its processes: the world size and how many
    items each rank did (a collective call: every rank makes it)."""
    counts = gather(items_done_here)
    return {"world_size": len(counts), "items_per_rank": counts}
