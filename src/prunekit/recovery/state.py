"""Periodic training checkpoints in safetensors (never pickle), so an interrupted run can resume.

The folder is hidden next to the output and removed when the run completes; nothing in it looks
like a finished model. Each checkpoint is a `step-N` folder inside it, written whole under a
temporary name and renamed into place before the previous one is removed, so a kill at any
moment (SIGKILL, power loss) leaves at least one complete checkpoint; resume takes the newest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from prunekit.errors import PrunekitError
from prunekit.recovery.distributed import gathered, local_like
from prunekit.utils import check_free_space, write_error

WEIGHTS, META = "state.safetensors", "state.json"


def state_dir_for(out: Path) -> Path:
    return Path(out).parent / f".{Path(out).name}.recover-state"


def _legacy_tmp(folder: Path) -> Path:
    """Where versions before step-N folders wrote the next checkpoint (a kill could leave it)."""
    return folder.with_name(folder.name + ".tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_step(candidate: Path) -> int | None:
    """The step of a checkpoint folder whose files are all there (state.json, written last,
    records the weights file's size), else None."""
    try:
        meta = json.loads((candidate / META).read_text())
        size = (candidate / WEIGHTS).stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        return None
    if "weights_bytes" in meta and meta["weights_bytes"] != size:
        return None
    return meta["step"]


def _candidates(folder: Path) -> list[Path]:
    """Every place a checkpoint of `folder` may be: its step-N folders, and the layout of
    earlier versions (the folder itself and its `.tmp` sibling)."""
    found = [folder, _legacy_tmp(folder)]
    with contextlib.suppress(OSError):
        found += sorted(p for p in folder.iterdir() if p.name.startswith("step-"))
    return found


def latest_state(folder: Path) -> Path | None:
    """The complete checkpoint with the most steps in `folder`, or None."""
    best: tuple[int, Path] | None = None
    for candidate in _candidates(Path(folder)):
        step = _complete_step(candidate)
        if step is not None and (best is None or step >= best[0]):
            best = (step, candidate)
    return None if best is None else best[1]


def has_state(folder: Path) -> bool:
    """Whether an interrupted run left anything at `folder` (complete or not)."""
    return os.path.lexists(folder) or os.path.lexists(_legacy_tmp(Path(folder)))


def remove_state(folder: Path) -> None:
    """Delete the checkpoints of a finished run (all of them, and the earlier layout's)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(_legacy_tmp(Path(folder)), ignore_errors=True)


def save_state(
    folder: Path, named: dict[str, torch.nn.Parameter], optimizer, meta: dict, write: bool = True
) -> None:
    """Trainable tensors, optimiser moments and progress as a new `step-N` folder (written whole
    under a temporary name, synced, renamed); older checkpoints go only once it is in place.
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
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{int(meta['step']):09d}"
    try:
        _write_checkpoint(folder, target, tensors, {**meta, "optimizer_steps": steps})
    except Exception as exc:
        cause = write_error(exc)
        if cause is None:
            raise
        kept = latest_state(folder)
        where = f"the last complete one, '{kept}', is kept" if kept else "none was kept"
        raise PrunekitError(
            f"could not save the training checkpoint in '{folder}' ({cause.strerror}); {where}; "
            "free some space and continue with --resume"
        ) from None
    for old in _candidates(folder):
        if old not in (folder, target):
            shutil.rmtree(old, ignore_errors=True)
    for name in (WEIGHTS, META):  # the earlier layout's files in the folder itself
        with contextlib.suppress(OSError):
            (folder / name).unlink()
    for stray in folder.glob(".incoming-*"):
        shutil.rmtree(stray, ignore_errors=True)


def _write_checkpoint(folder: Path, target: Path, tensors: dict, record: dict) -> None:
    """Write `target` whole under a temporary name (space checked first), sync, rename."""
    check_free_space(
        folder, sum(t.numel() * t.element_size() for t in tensors.values()), "the checkpoint"
    )
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        _fsync(tmp / WEIGHTS)
        record["weights_bytes"] = (tmp / WEIGHTS).stat().st_size
        (tmp / META).write_text(json.dumps(record))
        _fsync(tmp / META)
        if target.exists():  # the same step saved again (a resumed run): replace it whole
            shutil.rmtree(target)
        tmp.rename(target)
        _fsync(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_state(folder: Path, named: dict[str, torch.nn.Parameter], optimizer) -> dict:
    """Restore the newest complete checkpoint in `folder` (see `latest_state`; a checkpoint
    folder itself works too) into the live parameters and optimiser (each process its shard
    under FSDP); return the progress."""
    found = latest_state(folder)
    if found is None:
        raise PrunekitError(f"'{folder}' holds no complete training checkpoint to resume from")
    tensors = load_file(str(found / WEIGHTS))
    meta = json.loads((found / META).read_text())
    missing = [n for n in named if f"param/{n}" not in tensors]
    if missing:
        raise PrunekitError(
            f"the checkpoint in '{found}' does not hold {missing[0]} (trained with other "
            "settings?); resume with the same settings, or delete it to start over"
        )
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
