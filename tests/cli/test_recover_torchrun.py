"""`prunekit recover` launched as torchrun launches it (2 gloo processes): one writer, and the
result of one process training on the same global batches."""

import json
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunekit.cli import main

PRUNEKIT = str(Path(sys.executable).with_name("prunekit"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(folder.glob("*.safetensors"))))


@pytest.mark.parametrize("shard", ["ddp", "fsdp"])
def test_two_processes_write_once_and_match_one(tmp_path, tiny_model_dir, shard):
    corpus = tmp_path / "corpus.py"
    corpus.write_text((Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text())
    student = tmp_path / "student"
    prune = ["prune", str(tiny_model_dir), "--method", "magnitude", "--sparsity", "0.5"]
    assert main([*prune, "-o", str(student)]) == 0
    train = [
        *("recover", str(student), "--data", str(corpus), "--seq-len", "32", "--windows", "8"),
        *("--batch-size", "4", "--micro-batch", "1", "--no-bf16", "--max-steps", "2"),
        *("--lr", "1e-3"),
    ]
    single = tmp_path / "single"
    subprocess.run([PRUNEKIT, *train, "-o", str(single)], check=True, timeout=300)

    ddp = tmp_path / shard
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
    env["MASTER_PORT"] = str(_free_port())
    procs = [
        subprocess.Popen(
            [PRUNEKIT, *train, "--shard", shard, "-o", str(ddp)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert "output" in outs[0] and "output" not in outs[1]  # only rank 0 prints its summary
    assert not list(tmp_path.glob(".*recover-state*")) and not list(tmp_path.glob(".*partial*"))

    a, b, original = _weights(single), _weights(ddp), _weights(student)
    assert any(not torch.equal(a[k], original[k]) for k in a), "training changed nothing"
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
        assert not b[k][original[k] == 0].any(), k  # the pruned entries, exactly zero
    rep_a = json.loads((single / "report.json").read_text())["recovery"]["training"]
    rep_b = json.loads((ddp / "report.json").read_text())["recovery"]["training"]
    assert rep_a["tokens"] == rep_b["tokens"] and rep_b["steps"] == 2
    assert json.loads((ddp / "report.json").read_text())["recovery"]["config"]["shard"] == shard
