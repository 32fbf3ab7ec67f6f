"""torchrun support for `prunekit recover`: join the process group torchrun describes, one writer.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; each process then takes
its share of every global batch (recovery/trainer.py) and only rank 0 evaluates and writes.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def join_from_env(device: torch.device) -> torch.device:
    """Initialise the process group when launched by torchrun (NCCL on GPUs, gloo on CPUs);
    returns this process's device (cuda:LOCAL_RANK on GPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def is_writer() -> bool:
    """True in the one process that evaluates and writes the output (rank 0, or no group)."""
    return not dist.is_initialized() or dist.get_rank() == 0


def leave() -> None:
    """Wait for the writer, then leave the group (no-op without one)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
