"""Data-parallel recovery (gloo, 2 CPU processes) gives the single-process result for the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(tiny_model_dir, tmp_path):
    single = tmp_path / "single.safetensors"
    subprocess.run(
        [sys.executable, str(WORKER), str(tiny_model_dir), str(single)], check=True, timeout=300
    )
    ddp = tmp_path / "ddp.safetensors"
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tiny_model_dir), str(ddp)],
            env={**env, "RANK": str(r)},
        )
        for r in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = load_file(str(single)), load_file(str(ddp))
    original = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    moved = [k for k in a if k in original and not torch.equal(a[k], original[k])]
    assert moved, "training changed nothing"
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
