"""Helpers for the recovery tests: a tiny teacher/student pair, pruning, data on disk, a config.

Not a conftest.py: a second `conftest` module would shadow tests/conftest.py for `from conftest import`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from prunekit.recovery.config import RecoveryConfig


def load_pair(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = AutoModelForCausalLM.from_pretrained(path).eval()
    student = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    return teacher, student, tok


def magnitude_prune(model, sparsity: float = 0.5, nm: tuple[int, int] | None = None) -> None:
    """Zero the smallest |W| per row (or N of every M columns) of every decoder Linear."""
    from prunekit.models.adapters import adapter_for
    from prunekit.recovery.masks import decoder_linears

    with torch.no_grad():
        for lin in decoder_linears(model, adapter_for(model)).values():
            w = lin.weight
            if nm:
                n, m = nm
                groups = w.abs().reshape(w.shape[0], -1, m)
                idx = groups.argsort(-1)[..., :n]
                keep = torch.ones_like(groups, dtype=torch.bool).scatter_(-1, idx, False)
                w.mul_(keep.reshape(w.shape))
            else:
                k = int(w.shape[1] * sparsity)
                idx = w.abs().argsort(1)[:, :k]
                w.scatter_(1, idx, 0.0)


def text_jsonl(tmp_path):
    """A small JSONL of {"text"} rows (stdlib textwrap.py cut into chunks)."""
    import sysconfig
    from pathlib import Path

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = (stdlib / "textwrap.py").read_text()
    chunks = [text[i : i + 600] for i in range(0, 6000, 600)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"text": c}) for c in chunks) + "\n")
    return path


def config(**kw) -> RecoveryConfig:
    base = dict(
        seq_len=64,
        batch_size=4,
        micro_batch=2,
        max_tokens=None,
        max_steps=4,
        warmup_steps=1,
        bf16=False,
    )
    return RecoveryConfig.check({**base, **kw})


WORKER = Path(__file__).with_name("ddp_worker.py")
RANK_TIMEOUT_S = 900  # 20-45 s on an idle 2-core machine; CI shares its cores with heavy jobs


def run_worker(*args: str) -> None:
    """One single-process distillation run of ddp_worker.py."""
    subprocess.run([sys.executable, str(WORKER), *args], check=True, timeout=RANK_TIMEOUT_S)


def run_ranks(rendezvous: Path, *args: str, world_size: int = 2) -> None:
    """ddp_worker.py as `world_size` gloo ranks meeting through a file (no TCP port to race for);
    a rank that fails or outlives the timeout ends every rank, so no process is left behind."""
    env = {**os.environ, "WORLD_SIZE": str(world_size), "PRUNEKIT_TEST_INIT_FILE": str(rendezvous)}
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), *args], env={**env, "RANK": str(r)})
        for r in range(world_size)
    ]
    try:
        codes = [p.wait(timeout=RANK_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0] * world_size, f"rank exit codes {codes}"
