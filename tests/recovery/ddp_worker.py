"""Run by test_recovery_ddp.py / test_recovery_fsdp.py: one distillation run, alone or as one rank
of a gloo process group.

Usage: python ddp_worker.py MODEL_DIR OUT.safetensors [ddp|fsdp] [STATE_DIR [stop|resume]]
(RANK/WORLD_SIZE/MASTER_* in the environment). `stop` ends the run after step 2 as if killed;
`resume` continues from STATE_DIR. Under FSDP every rank checks after each step that the pruned
entries of its shards are exactly zero.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from prunekit.models.adapters import adapter_for
from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.data import Sample, TrainingData
from prunekit.recovery.distributed import local_like
from prunekit.recovery.masks import SparsityMasks
from prunekit.recovery.trainable import select_trainable
from prunekit.recovery.trainer import Distiller


class Stopped(Exception):
    """The simulated kill."""


def main(model_dir: str, out: str, shard: str = "ddp", state: str = "", mode: str = "") -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # rendezvous through a file when the test gives one, else torchrun's env://
        init = os.environ.get("PRUNEKIT_TEST_INIT_FILE")
        rank = int(os.environ["RANK"])
        kw = {"init_method": f"file://{init}", "rank": rank, "world_size": world} if init else {}
        dist.init_process_group("gloo", **kw)
    teacher = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    student = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        teacher.model.norm.weight.mul_(2.0)
        for layer in student.model.layers:
            layer.mlp.down_proj.weight[:, ::2] = 0
    adapter = adapter_for(student)
    masks = SparsityMasks.from_model(student, adapter)
    cfg = RecoveryConfig(
        train="full",
        batch_size=4,
        micro_batch=1,
        lr=1e-2,
        max_steps=3,
        max_tokens=None,
        warmup_steps=1,
        checkpoint_every=2,
        bf16=False,
        shard=shard,
    )
    params = select_trainable(student, adapter, cfg.train, masks)
    gen = torch.Generator().manual_seed(0)
    lengths = [20, 33, 27, 40, 25, 31, 22, 38]  # unequal: the global token normalisation matters
    data = TrainingData(
        [Sample(torch.randint(1, 100, (n,), generator=gen).tolist(), [1.0] * n) for n in lengths]
    )
    d = Distiller(student, teacher, adapter, params, masks, None, cfg, torch.device("cpu"), 0)
    step = d._step

    def checked_step(data: TrainingData, n: int) -> tuple[float, int]:
        if mode == "stop" and n == 2:
            raise Stopped
        out = step(data, n)
        for w, keep in masks.weights(student, adapter):
            assert not local_like(~keep, w).mul(w).to_local().any(), f"step {n}: mask broken"
        return out

    if shard == "fsdp":
        d._step = checked_step
    try:
        d.train(data, Path(state) if state else None, resume=mode == "resume", progress=False)
        model = d.unsharded()
        if not dist.is_initialized() or dist.get_rank() == 0:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    except Stopped:
        pass
    if dist.is_initialized():
        dist.barrier()  # no rank exits while another still talks to it (gloo aborts otherwise)
        dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
    # Skip interpreter teardown: gloo's threads can abort a rank (SIGABRT, "terminate called without
    # an active exception") in static destructors after its work is done and written (one CI run).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
