"""Data-parallel recovery (gloo, 2 CPU processes) gives the single-process result for the same global batch."""

from pathlib import Path

import torch
from recovery_helpers import run_ranks, run_worker
from safetensors.torch import load_file


def test_two_gloo_processes_match_one_process(tiny_model_dir, tmp_path):
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    run_worker(str(tiny_model_dir), str(single))
    run_ranks(tmp_path / "rendezvous", str(tiny_model_dir), str(ddp))
    a, b = load_file(str(single)), load_file(str(ddp))
    original = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    moved = [k for k in a if k in original and not torch.equal(a[k], original[k])]
    assert moved, "training changed nothing"
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
