"""`recover --resume` after a SIGKILL at any moment of a checkpoint save (issue 31, item 9): the
swap is atomic, at least one complete checkpoint always survives, resume takes the newest
complete one, and the next save never deletes it before its successor is in place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from prunekit.recovery.state import has_state, latest_state, load_state, remove_state, save_state

SAVER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    import safetensors.torch, torch
    import prunekit.recovery.state as state

    folder, kill_at = Path(sys.argv[1]), sys.argv[2]
    p = torch.nn.Parameter(torch.zeros(64))
    opt = torch.optim.AdamW([p])
    named = {"w": p}

    def step_to(n):
        p.grad = torch.ones_like(p)
        opt.step()
        with torch.no_grad():
            p.fill_(float(n))
        state.save_state(folder, named, opt, {"step": n, "tokens": 10 * n, "losses": [1.0] * n})

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    step_to(3)
    if kill_at == "writing":  # half the weights file written
        real = safetensors.torch.save_file
        def half(tensors, path, *a, **k):
            real(tensors, path, *a, **k)
            os.truncate(path, os.path.getsize(path) // 2)
            die()
        state.save_file = half
    elif kill_at == "rename":  # the new checkpoint whole, not yet in place
        Path.rename = die
    elif kill_at == "removing":  # the new one in place, the old one half deleted
        real_rmtree = shutil.rmtree
        def partly(path, *a, **k):
            if Path(path).name.startswith("step-"):
                (Path(path) / "state.safetensors").unlink()
                die()
            return real_rmtree(path, *a, **k)
        state.shutil.rmtree = partly
    step_to(6)
    """
)


def _save_then_kill(folder: Path, kill_at: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SAVER, str(folder), kill_at], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _restore(folder: Path) -> tuple[int, float]:
    p = torch.nn.Parameter(torch.full((64,), -1.0))
    opt = torch.optim.AdamW([p])
    meta = load_state(folder, {"w": p}, opt)
    assert torch.all(p == p[0]) and "exp_avg" in opt.state[p]
    return meta["step"], float(p.detach()[0])


@pytest.mark.parametrize(("kill_at", "step"), [("writing", 3), ("rename", 3), ("removing", 6)])
def test_a_kill_during_the_swap_keeps_a_complete_checkpoint(tmp_path, kill_at, step):
    folder = tmp_path / ".out.recover-state"
    _save_then_kill(folder, kill_at)
    assert latest_state(folder) is not None
    assert _restore(folder) == (step, float(step))


def test_the_next_save_keeps_the_good_checkpoint_until_its_successor_is_in_place(tmp_path):
    folder = tmp_path / ".out.recover-state"
    _save_then_kill(folder, "rename")
    p = torch.nn.Parameter(torch.full((64,), 4.0))
    opt = torch.optim.AdamW([p])
    p.sum().backward()
    opt.step()
    save_state(folder, {"w": p}, opt, {"step": 4, "tokens": 40, "losses": [1.0] * 4})
    assert _restore(folder)[0] == 4
    assert sorted(x.name for x in folder.iterdir()) == ["step-000000004"]  # nothing stale left


def test_the_earlier_layout_left_mid_swap_resumes(tmp_path):
    """Before step-N folders, a kill between removing the folder and renaming `.tmp` into
    place left only `.tmp`: it is found and resumed from, and a new save replaces it."""
    folder = tmp_path / ".out.recover-state"
    _save_then_kill(tmp_path / "scratch", "rename")
    legacy = folder.with_name(folder.name + ".tmp")
    os.rename(latest_state(tmp_path / "scratch"), legacy)
    assert has_state(folder)  # `recover` without --resume refuses to start over on it
    assert latest_state(folder) == legacy and _restore(folder)[0] == 3
    p = torch.nn.Parameter(torch.zeros(64))
    opt = torch.optim.AdamW([p])
    p.grad = torch.ones_like(p)
    opt.step()
    save_state(folder, {"w": p}, opt, {"step": 5, "tokens": 1, "losses": []})
    assert _restore(folder)[0] == 5 and not legacy.exists()
    remove_state(folder)
    assert not folder.exists()


def test_an_incomplete_checkpoint_is_never_resumed(tmp_path):
    folder = tmp_path / ".out.recover-state"
    _save_then_kill(folder, "rename")
    good = latest_state(folder)
    bad = folder / "step-000000009"
    bad.mkdir()
    (bad / "state.safetensors").write_bytes(b"\0" * 10)
    meta = json.loads((good / "state.json").read_text()) | {"step": 9}
    (bad / "state.json").write_text(json.dumps(meta))  # records the good file's size: mismatch
    assert latest_state(folder) == good
