"""Time the mask and SparseGPT kernels (and one SparseGPT prune's extra anonymous memory) of the
prunekit on PYTHONPATH, on fixed random shapes of smollm2 / qwen layers; prints one JSON line.

A/B two commits: check the other one out with `git worktree add /tmp/old COMMIT`, then alternate
    PYTHONPATH=/tmp/old/src python benchmarks/kernel_ab.py
    PYTHONPATH=src python benchmarks/kernel_ab.py
alone on the cores (flock /tmp/prunekit-bench.lock), twice each: single timings here vary by ±20%.
"""

from __future__ import annotations

import gc
import json
import time

import torch
from llmcompressor_reference import PeakAnon

from prunekit.methods.masks import row_mask
from prunekit.methods.patterns import UNSTRUCTURED, parse_pattern
from prunekit.methods.sparsegpt import sparsegpt_prune


def _ms(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def extra_anon_mib(fn) -> float:
    """Peak anonymous memory above the starting level while `fn` runs (PeakAnon's sampling)."""
    gc.collect()
    base = PeakAnon.now_mb()
    anon = PeakAnon().start()
    fn()
    return anon.stop() - base


def main() -> None:
    torch.manual_seed(0)
    out: dict[str, float] = {}
    for d_out, d_in in [(576, 576), (1536, 576), (576, 1536), (4864, 896), (896, 4864)]:
        scores = torch.rand(d_out, d_in)
        out[f"row_mask {d_out}x{d_in} ms"] = _ms(lambda s=scores: row_mask(s, 0.5))
    for d_out, d_in in [(576, 576), (1536, 576), (576, 1536)]:
        w, x = torch.randn(d_out, d_in), torch.randn(2048, d_in)
        h = 2 * x.T @ x / 2048
        for pattern in (UNSTRUCTURED, parse_pattern("2:4")):
            key = f"sparsegpt {pattern} {d_out}x{d_in} ms"
            out[key] = _ms(lambda w=w, h=h, p=pattern: sparsegpt_prune(w, h, 0.5, p))
    w, x = torch.randn(896, 4864), torch.randn(1024, 4864)
    h = 2 * x.T @ x / 1024
    del x
    key = "sparsegpt 2:4 896x4864 extra anonymous MiB"
    out[key] = extra_anon_mib(lambda: sparsegpt_prune(w, h, 0.5, parse_pattern("2:4")))
    print(json.dumps({k: round(v, 1) for k, v in out.items()}))


if __name__ == "__main__":
    main()
