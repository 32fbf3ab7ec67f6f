"""FSDP2 recovery (gloo, 2 CPU processes, student and teacher sharded per decoder block) gives the
single-process result for the same global batch, keeps every pruned weight at zero, and resumes."""

import json
from pathlib import Path

import pytest
import torch
from recovery_helpers import config, load_pair, magnitude_prune, run_ranks, run_worker
from safetensors.torch import load_file

from prunekit.errors import PrunekitError
from prunekit.recovery.run import recover
from prunekit.recovery.state import latest_state


def test_fsdp_two_gloo_processes_match_one_process_and_resume(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir)
    single = tmp_path / "single.safetensors"
    run_worker(model, str(single))
    fsdp, resumed, state = (tmp_path / n for n in ("fsdp.safetensors", "resumed.st", "state"))
    run_ranks(tmp_path / "rendezvous-1", model, str(fsdp), "fsdp")
    run_ranks(tmp_path / "rendezvous-2", model, str(resumed), "fsdp", str(state), "stop")
    assert json.loads((latest_state(state) / "state.json").read_text())["step"] == 2
    assert not resumed.exists()
    run_ranks(tmp_path / "rendezvous-3", model, str(resumed), "fsdp", str(state), "resume")

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
        config(method="reconstruct", shard="fsdp")
    with pytest.raises(PrunekitError, match="shard mode"):
        config(shard="zero3")
