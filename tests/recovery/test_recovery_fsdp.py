"""FSDP2 recovery (gloo, 2 CPU processes, student and teacher sharded per decoder block) gives the
single-process result for the same global batch, keeps every pruned weight at zero, and resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recovery_helpers import config, load_pair, magnitude_prune
from safetensors.torch import load_file
from test_recovery_ddp import WORKER, _free_port

from prunekit.errors import PrunekitError
from prunekit.recovery.run import recover


def _two_ranks(*args: str) -> None:
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), *args], env={**env, "RANK": str(r)})
        for r in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]


def test_fsdp_two_gloo_processes_match_one_process_and_resume(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir)
    single = tmp_path / "single.safetensors"
    subprocess.run([sys.executable, str(WORKER), model, str(single)], check=True, timeout=300)
    fsdp, resumed, state = (tmp_path / n for n in ("fsdp.safetensors", "resumed.st", "state"))
    _two_ranks(model, str(fsdp), "fsdp")
    _two_ranks(model, str(resumed), "fsdp", str(state), "stop")
    assert json.loads((state / "state.json").read_text())["step"] == 2 and not resumed.exists()
    _two_ranks(model, str(resumed), "fsdp", str(state), "resume")

    a, b, c = load_file(str(single)), load_file(str(fsdp)), load_file(str(resumed))
    original = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    assert a.keys() == b.keys() == c.keys()
    moved = [k for k in a if k in original and not torch.equal(a[k], original[k])]
    assert moved, "training changed nothing"
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
        assert torch.allclose(a[k], c[k], atol=1e-5, rtol=1e-4), k
    for i in range(3):
        down = f"model.layers.{i}.mlp.down_proj.weight"
        assert not b[down][:, ::2].any() and not c[down][:, ::2].any()
        assert b[down][:, 1::2].all()


def test_fsdp_without_a_process_group_fails_in_one_line(tiny_model_dir):
    teacher, student, tok = load_pair(tiny_model_dir)
    magnitude_prune(student, 0.5)
    with pytest.raises(PrunekitError, match="torchrun --nproc-per-node N"):
        recover(student, tok, teacher, tok, config(data="nowhere.jsonl", shard="fsdp"))


def test_fsdp_bad_settings_fail_before_loading():
    with pytest.raises(PrunekitError, match="distill"):
        config(method="reconstruct", shard="fsdp").validated()
    with pytest.raises(PrunekitError, match="shard mode"):
        config(shard="zero3").validated()
