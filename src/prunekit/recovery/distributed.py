"""torchrun support for `prunekit recover`: join the process group torchrun describes, one writer,
and FSDP2 sharding (`--shard fsdp`) for students too large for one device.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; each process then takes
its share of every global batch (recovery/trainer.py) and only rank 0 evaluates and writes.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter


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


def check_fsdp(batch_size: int) -> None:
    """FSDP needs torchrun's process group, and every process must run as many forwards."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        raise PrunekitError(
            "--shard fsdp shards the student over several processes; launch it with "
            "`torchrun --nproc-per-node N $(which prunekit) recover ... --shard fsdp` (N >= 2)"
        )
    if batch_size % dist.get_world_size():
        raise PrunekitError(
            f"--shard fsdp needs --batch-size ({batch_size}) divisible by the "
            f"{dist.get_world_size()} processes (each runs the same number of forwards)"
        )


def shard(model: nn.Module, adapter: DecoderAdapter, device: torch.device, bf16: bool) -> None:
    """FSDP2 in place: each decoder block, then the root (embeddings, final norm, head); with
    `bf16`, forwards in bfloat16 over float32 shards, gradients reduced in float32."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    mp = mp if bf16 else MixedPrecisionPolicy()
    for layer in adapter.layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def local_like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`full` laid out like `ref`: this process's shard where `ref` is an FSDP (DTensor) tensor."""
    if isinstance(ref, DTensor):
        return distribute_tensor(
            full.to(ref.device), ref.device_mesh, ref.placements, src_data_rank=None
        )
    return full.to(ref.device)


def gathered(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: all-gathered where `t` is an FSDP shard (a collective), else `t`."""
    return t.full_tensor() if isinstance(t, DTensor) else t
