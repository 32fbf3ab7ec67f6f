"""Periodic training checkpoints in safetensors (never pickle), so an interrupted run can resume.

The folder is hidden next to the output and removed when the run completes; nothing in it looks
like a finished model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from prunekit.recovery.distributed import gathered, local_like


def state_dir_for(out: Path) -> Path:
    return Path(out).parent / f".{Path(out).name}.recover-state"


def save_state(
    folder: Path, named: dict[str, torch.nn.Parameter], optimizer, meta: dict, write: bool = True
) -> None:
    """Trainable tensors, optimiser moments and progress, written to a temp folder then renamed.
    Under FSDP every process calls it (the shards are gathered, whole); only `write` writes."""
    tensors, steps = {}, {}
    for name, p in named.items():
        tensors[f"param/{name}"] = gathered(p.detach()).cpu().contiguous()
        for key, value in optimizer.state.get(p, {}).items():
            if key == "step":
                steps[name] = float(value)
            else:
                tensors[f"opt/{key}/{name}"] = gathered(value.detach()).cpu().contiguous()
    if not write:
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**meta, "optimizer_steps": steps}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_state(folder: Path, named: dict[str, torch.nn.Parameter], optimizer) -> dict:
    """Restore what `save_state` wrote into the live parameters and optimiser (each process its
    shard under FSDP); return the progress."""
    tensors = load_file(str(folder / "state.safetensors"))
    meta = json.loads((folder / "state.json").read_text())
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(local_like(tensors[f"param/{n}"], p))
    for n, p in named.items():
        st = {
            key.split("/")[1]: local_like(t, p)
            for key, t in tensors.items()
            if key.startswith("opt/") and key.split("/", 2)[2] == n
        }
        if st:
            st["step"] = torch.tensor(meta["optimizer_steps"][n])
            optimizer.state[p] = st
    return meta
