"""Foundation benchmark: dense vs magnitude / Wanda / SparseGPT at 50% and 2:4 on one model.

Each configuration runs in its own subprocess so its peak RSS is its own. Prints a table and
writes benchmarks/results/oneshot_<model>.{json,md}.

    python benchmarks/oneshot.py --model qwen2.5-coder-0.5b --samples 64 --seq-len 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONFIGS = [
    ("dense", None, None),
    ("magnitude", 0.5, "unstructured"),
    ("wanda", 0.5, "unstructured"),
    ("sparsegpt", 0.5, "unstructured"),
    ("magnitude", None, "2:4"),
    ("wanda", None, "2:4"),
    ("sparsegpt", None, "2:4"),
]


def worker(args: argparse.Namespace) -> dict:
    """Load, prune (or time a dense forward), evaluate perplexity; return one result row."""
    import torch

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.models.adapters import adapter_for
    from prunekit.utils import peak_rss_mb

    torch.set_num_threads(args.threads) if args.threads else None
    t0 = time.perf_counter()
    lm = prunekit.load_model(args.model, args.dtype)
    load_s = time.perf_counter() - t0
    row: dict = {"method": args.method, "pattern": args.pattern or "-", "sparsity": args.sparsity}
    windows, _ = calibration_data(lm.tokenizer, "python", args.samples, args.seq_len, 0)
    if args.method != "dense":
        result = prunekit.prune(
            lm.model,
            lm.tokenizer,
            method=args.method,
            sparsity=args.sparsity,
            pattern=args.pattern,
            calib=windows,
            seq_len=args.seq_len,
            seed=0,
            batch_size=args.batch_size,
        )
        row["prune_s"] = result.report["timings_s"]["prune"]
        row["achieved_sparsity"] = result.report["sparsity"]["achieved"]
    # Peak RSS so far: load (+ prune). For dense it is measured after the forward below instead.
    row["peak_rss_mb"] = peak_rss_mb()
    # A plain forward pass over the same calibration tokens, timed in this process right after
    # pruning, so the ratio prune/forward sees the same machine load (zeros cost the same on CPU).
    # Magnitude uses no data, so its ratio is taken against the dense run's forward instead.
    if args.method != "magnitude":
        decoder = adapter_for(lm.model).decoder(lm.model)
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch in windows.split(args.batch_size):
                decoder(input_ids=batch, use_cache=False)
        row["forward_s"] = time.perf_counter() - t0
    if args.method == "dense":
        row["peak_rss_mb"] = peak_rss_mb()
    row["loadavg_1m"] = os.getloadavg()[0]
    ppl = prunekit.perplexity(lm.model, lm.tokenizer, "python", args.seq_len, args.ppl_tokens)
    row.update(ppl=ppl["ppl"], ppl_tokens=ppl["tokens"], load_s=load_s)
    if args.save_dir and args.method != "dense":
        from prunekit.reports.report import new_report

        name = f"{args.method}-{(args.pattern or 'unstructured').replace(':', '_')}"
        result.report = {**new_report(), "model": lm.info, **result.report}
        result.report["evaluation"] = {"perplexity": {"python": ppl}}
        prunekit.save(result, Path(args.save_dir) / name, force=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--ppl-tokens", type=int, default=32768)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--save-dir", default="runs/oneshot", help="where pruned checkpoints go ('' = none)"
    )
    p.add_argument("--only", default=None, help="comma-separated method names to run")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", default=None, help=argparse.SUPPRESS)
    p.add_argument("--sparsity", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--pattern", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from prunekit.reports.report import machine, versions

    rows = []
    for method, sparsity, pattern in CONFIGS:
        if args.only and method not in args.only.split(",") and method != "dense":
            continue
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--method",
            method,
            "--model",
            args.model,
            "--samples",
            str(args.samples),
            "--seq-len",
            str(args.seq_len),
            "--batch-size",
            str(args.batch_size),
            "--ppl-tokens",
            str(args.ppl_tokens),
            "--dtype",
            args.dtype,
            "--threads",
            str(args.threads),
            "--save-dir",
            args.save_dir,
        ]
        if sparsity is not None:
            cmd += ["--sparsity", str(sparsity)]
        if pattern is not None:
            cmd += ["--pattern", pattern]
        print(f"running {method} {pattern or ''} …", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    dense = rows[0]
    for r in rows[1:]:
        r.setdefault("forward_s", dense["forward_s"])
        r["prune_x_forward"] = r["prune_s"] / r["forward_s"]
        r["rss_x_dense"] = r["peak_rss_mb"] / dense["peak_rss_mb"]
    meta = {
        "model": args.model,
        "samples": args.samples,
        "seq_len": args.seq_len,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "ppl_tokens": args.ppl_tokens,
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"oneshot_{args.model}_{args.dtype}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = render(meta, rows)
    Path(f"{stem}.md").write_text(md)
    print(md)


def render(meta: dict, rows: list[dict]) -> str:
    m = meta["machine"]
    lines = [
        f"# One-shot pruning on `{meta['model']}` ({meta['dtype']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''}. "
        f"Calibration: {meta['samples']} × {meta['seq_len']} tokens of Python (seed 0); "
        f"perplexity on {meta['ppl_tokens']} held-out Python tokens. Command: `{meta['command']}`",
        "",
        "Prune time is divided by a plain forward pass over the same calibration tokens timed in the "
        "same process right after pruning (same machine load). Peak RSS of a pruning run is taken "
        "after pruning (load + prune); the dense row's is load + one forward pass.",
        "",
        "| method | pattern | ppl (python) | achieved sparsity | prune time (s) | forward (s) | prune ÷ forward | peak RSS (MiB) | × dense RSS | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] == "dense":
            lines.append(
                f"| dense | - | {r['ppl']:.3f} | 0 | - | {r['forward_s']:.1f} | - | "
                f"{r['peak_rss_mb']:.0f} | 1.00 | {r['loadavg_1m']:.1f} |"
            )
        else:
            lines.append(
                f"| {r['method']} | {r['pattern']} | {r['ppl']:.3f} | {r['achieved_sparsity']:.4f} | "
                f"{r['prune_s']:.1f} | {r['forward_s']:.1f} | {r['prune_x_forward']:.2f} | "
                f"{r['peak_rss_mb']:.0f} | {r['rss_x_dense']:.2f} | {r['loadavg_1m']:.1f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
