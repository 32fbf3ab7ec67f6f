"""Prune speed variants (issue 16): the engine before/after statistics-pass truncation, bfloat16
autocast forwards, the dense stream, and NeuroAL's exact vs cached dense reference, each in a
fresh process on the same windows: wall and CPU seconds, masks identical to the baseline or not,
perplexity, NeuroAL's chosen λs and cost ÷ plain Wanda.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/prune_speed.py \\
        --model smollm2-135m --samples 32 --seq-len 256
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# name: (method, pattern, prune kwargs, old engine)
VARIANTS: dict[str, tuple[str, str, dict, bool]] = {
    "wanda/full-pass-engine": ("wanda", "unstructured", {}, True),
    "wanda": ("wanda", "unstructured", {}, False),
    "wanda/bf16-forwards": ("wanda", "unstructured", {"forward_dtype": "bfloat16"}, False),
    "wanda/dense-stream": ("wanda", "unstructured", {"stream": "dense"}, False),
    "wanda-2:4/full-pass-engine": ("wanda", "2:4", {}, True),
    "wanda-2:4": ("wanda", "2:4", {}, False),
    "sparsegpt/full-pass-engine": ("sparsegpt", "unstructured", {}, True),
    "sparsegpt": ("sparsegpt", "unstructured", {}, False),
    "sparsegpt/bf16-forwards": ("sparsegpt", "unstructured", {"forward_dtype": "bfloat16"}, False),
    "sparsegpt-2:4": ("sparsegpt", "2:4", {}, False),
    "neuroal/full-pass-engine": ("wanda", "unstructured", {"allocation": "neuroal"}, True),
    "neuroal": ("wanda", "unstructured", {"allocation": "neuroal"}, False),
    "neuroal/cached": (
        "wanda",
        "unstructured",
        {"allocation": "neuroal", "neuroal": {"dense_reference": "cached"}},
        False,
    ),
    # the published (stream) reference on half the search windows
    "neuroal/4": (
        "wanda",
        "unstructured",
        {"allocation": "neuroal", "neuroal": {"samples": 4}},
        False,
    ),
    # the cached reference on half the search windows: every candidate's pass costs half
    "neuroal/cached-4": (
        "wanda",
        "unstructured",
        {"allocation": "neuroal", "neuroal": {"dense_reference": "cached", "samples": 4}},
        False,
    ),
    "neuroal/cached+bf16": (
        "wanda",
        "unstructured",
        {
            "allocation": "neuroal",
            "neuroal": {"dense_reference": "cached"},
            "forward_dtype": "bfloat16",
        },
        False,
    ),
}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _full_pass_collect(self, kinds, names=None, pass_on=False):
    """The engine's collect before truncation (a whole forward, outputs dropped)."""
    from prunekit.calibration.engine import hooked_forward

    names = list(self.linears) if names is None else list(names)
    linears = {n: self.linears[n] for n in names}
    stats, outputs = hooked_forward(linears, kinds, self.forward, self.input_groups)
    if pass_on:
        self.outputs = outputs
    return stats


def worker(args: argparse.Namespace) -> dict:
    import torch

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.calibration.engine import BlockContext
    from prunekit.models.adapters import adapter_for

    if args.threads:
        torch.set_num_threads(args.threads)
    method, pattern, kwargs, old = VARIANTS[args.variant]
    kwargs = dict(kwargs)
    if old:
        BlockContext.collect = _full_pass_collect
    lm = prunekit.load_model(args.model, "float32")
    windows, _ = calibration_data(lm.tokenizer, "python", args.samples, args.seq_len, 0)
    options = {"grid": args.grid, **kwargs.pop("neuroal", {})}
    c0, t0 = _cpu_s(), time.perf_counter()
    result = prunekit.prune(
        lm.model,
        lm.tokenizer,
        method=method,
        sparsity=args.sparsity if pattern == "unstructured" else None,
        pattern=pattern,
        calib=windows,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        progress=False,
        allocation_options=options if kwargs.get("allocation") == "neuroal" else None,
        **kwargs,
    )
    row: dict = {
        "variant": args.variant,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - c0,
    }
    row["loadavg_1m"] = os.getloadavg()[0]
    digest = hashlib.sha256()
    adapter = adapter_for(lm.model)
    for layer in adapter.layers(lm.model):
        for lin in adapter.linears(layer).values():
            digest.update((lin.weight == 0).numpy().tobytes())
    row["mask_sha256"] = digest.hexdigest()[:16]
    search = result.report.get("allocation", {}).get("search")
    if search:
        row["lambdas"] = [
            search["block_step"]["chosen_lambda"],
            search.get("row_step", {}).get("chosen_lambda"),
        ]
        row["search_s"] = search["search_s"]
    ppl = prunekit.perplexity(
        lm.model, lm.tokenizer, "python", args.seq_len, args.ppl_tokens, progress=False
    )
    row["ppl"] = ppl["ppl"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sparsity", type=float, default=0.5, help="unstructured rows")
    p.add_argument("--grid", default="full", help="NeuroAL grid")
    p.add_argument("--ppl-tokens", type=int, default=8192)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--tag", default="")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from prunekit.reports.report import machine, versions

    rows = []
    for name in args.variants.split(","):
        print(f"{name} …", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--worker", "--variant", name, "--model", args.model]
        for flag in (
            "samples",
            "seq_len",
            "batch_size",
            "sparsity",
            "grid",
            "ppl_tokens",
            "threads",
        ):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            rows.append({"variant": name, "error": f"exit {proc.returncode}"})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    meta = {
        "model": args.model,
        "samples": args.samples,
        "seq_len": args.seq_len,
        "grid": args.grid,
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    by = {r["variant"]: r for r in rows}
    lines = [
        f"# Prune speed variants on `{args.model}` ({args.samples} × {args.seq_len}, float32 weights)",
        "",
        "Baseline of each row: the same method/pattern without '/…'; NeuroAL ÷ Wanda: wall "
        "over the plain `wanda` row of this run.",
        "",
        "| variant | wall s | CPU s | wall ÷ baseline | masks = baseline | ppl | λ (block, row) "
        "| ÷ wanda | load 1m |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | failed: {r['error']} | | | | | | | |")
            continue
        base = by.get(r["variant"].split("/")[0], {})
        ratio = r["wall_s"] / base["wall_s"] if base.get("wall_s") else None
        same = "yes" if base.get("mask_sha256") == r["mask_sha256"] else "no"
        per_wanda = r["wall_s"] / by["wanda"]["wall_s"] if "wall_s" in by.get("wanda", {}) else None
        lines.append(
            f"| {r['variant']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{'' if ratio is None else f'{ratio:.3f}'} | {same} | {r['ppl']:.3f} | "
            f"{r.get('lambdas', '')} | {'' if per_wanda is None else f'{per_wanda:.2f}'} | "
            f"{r['loadavg_1m']:.1f} |"
        )
    md = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"prune_speed_{args.model}{'_' + args.tag if args.tag else ''}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    Path(f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
