"""prunekit vs llm-compressor side by side, in one run: prune time (wall and CPU), peak RSS and
held-out perplexity for Wanda / SparseGPT × unstructured 50% / 2:4, on the same calibration windows.

Every prune runs in its own fresh process (so its peak RSS is its own), prunekit's in this venv,
llm-compressor's in its own (it pins another transformers):
    python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install torch==2.13.0 \\
        && /work/peers-venv/bin/pip install llmcompressor torch==2.13.0
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/peers.py --model smollm2-135m \\
        --samples 16 --seq-len 256
Both load float32 weights. Perplexity of every output is measured by prunekit, in a fresh process,
on the same held-out windows. The two sides alternate within each configuration; the 1-minute
load average is recorded next to every row (the machine is shared). Ratios are prunekit ÷ peer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CONFIGS = ("wanda:unstructured", "sparsegpt:unstructured", "wanda:2:4", "sparsegpt:2:4")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pk_worker(args: argparse.Namespace) -> dict:
    """prunekit in this process: prune (or only evaluate a folder); one JSON row."""
    import torch
    from llmcompressor_reference import PeakAnon
    from safetensors.torch import load_file

    import prunekit
    from prunekit.models.adapters import adapter_for

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_dir:  # a checkpoint written by the peer: perplexity only
        lm = prunekit.load_model(args.eval_dir)
        ppl = prunekit.perplexity(
            lm.model, lm.tokenizer, "python", args.seq_len, args.ppl_tokens, progress=False
        )
        zeros = sum(int((p == 0).sum()) for p in _linears(lm.model))
        numel = sum(p.numel() for p in _linears(lm.model))
        return {
            "ppl": ppl["ppl"],
            "ppl_tokens": ppl["tokens"],
            "window_nll": ppl["window_nll"],
            "achieved_sparsity": zeros / numel,
        }
    ids = load_file(args.ids)["input_ids"]
    anon = PeakAnon().start()  # load + prune, as ru_maxrss below
    lm = prunekit.load_model(args.model, "float32")
    row: dict = {"threads": torch.get_num_threads()}
    if args.dense_forward:  # one dense forward over the same tokens, for prune ÷ forward
        decoder = adapter_for(lm.model).decoder(lm.model)
        c0, t0 = _cpu_s(), time.perf_counter()
        with torch.no_grad():
            for batch in ids.split(args.batch_size):
                decoder(input_ids=batch, use_cache=False)
        row.update(forward_s=time.perf_counter() - t0, forward_cpu_s=_cpu_s() - c0)
    method, pattern = args.config.split(":", 1)
    c0, t0 = _cpu_s(), time.perf_counter()
    result = prunekit.prune(
        lm.model,
        lm.tokenizer,
        method=method,
        sparsity=0.5 if pattern == "unstructured" else None,
        pattern=pattern,
        calib=ids,
        seq_len=ids.shape[1],
        batch_size=args.batch_size,
        progress=False,
        forward_dtype=args.forward_dtype or None,
        stream=args.stream,
    )
    prune_s = time.perf_counter() - t0
    anon.stop()
    row.update(
        prune_s=prune_s,
        cpu_s=_cpu_s() - c0,
        peak_rss_mb=_peak_mb(),  # load + prune, before evaluation
        peak_anon_mb=anon.peak_mb,
        achieved_sparsity=result.report["sparsity"]["achieved"],
        loadavg_1m=os.getloadavg()[0],
    )
    ppl = prunekit.perplexity(
        lm.model, lm.tokenizer, "python", args.seq_len, args.ppl_tokens, progress=False
    )
    row.update(ppl=ppl["ppl"], ppl_tokens=ppl["tokens"], window_nll=ppl["window_nll"])
    return row


def _linears(model):
    from prunekit.models.adapters import adapter_for

    adapter = adapter_for(model)
    for layer in adapter.layers(model):
        for lin in adapter.linears(layer).values():
            yield lin.weight


def _run(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(a: dict, b: dict, key: str) -> float | None:
    if key in a and key in b and b[key]:
        return a[key] / b[key]
    return None


def _paired(a: dict, b: dict) -> dict | None:
    """Paired per-window NLL difference a − b on the same held-out windows (None if either lacks them)."""
    from prunekit.evaluation.perplexity import paired_nll_difference

    if "window_nll" not in a or "window_nll" not in b:
        return None
    return paired_nll_difference(a["window_nll"], b["window_nll"])


def add_bands(rows: list[dict]) -> None:
    """Each row's perplexity against the peer's, and a dense-stream row's against the pruned-stream
    row of the same configuration and forward dtype, as paired differences."""
    pruned = {
        (r["method"], r["pattern"], r["forward_dtype"]): r["prunekit"]
        for r in rows
        if r["stream"] == "pruned"
    }
    for r in rows:
        if "llmcompressor" in r:
            r["vs_peer"] = _paired(r["prunekit"], r["llmcompressor"])
        base = pruned.get((r["method"], r["pattern"], r["forward_dtype"]))
        if r["stream"] != "pruned" and base is not None:
            r["vs_pruned_stream"] = _paired(r["prunekit"], base)


def band(d: dict | None) -> str:
    """A paired NLL difference as a perplexity change with its ±2 s.e. interval and a verdict."""
    if not d:
        return "—"
    lo, hi = d["mean"] - 2 * d["se"], d["mean"] + 2 * d["se"]
    verdict = "higher" if lo > 0 else "lower" if hi < 0 else "n.s."
    pct = [100 * math.expm1(v) for v in (d["mean"], lo, hi)]
    return f"{pct[0]:+.1f}% [{pct[1]:+.1f}, {pct[2]:+.1f}] {verdict}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--ppl-tokens", type=int, default=16384)
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads on both sides (0: torch's)"
    )
    p.add_argument("--configs", default=",".join(CONFIGS), help="method:pattern, comma-separated")
    p.add_argument(
        "--forward-dtype",
        default="",
        help="prunekit only, comma-separated variants, e.g. float32,bfloat16 (autocast)",
    )
    p.add_argument(
        "--stream",
        default="pruned",
        help="prunekit only, comma-separated: pruned (published, sequential), dense (one forward)",
    )
    p.add_argument("--peer-python", default="/work/peers-venv/bin/python")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--pk-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--eval-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--dense-forward", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pk_worker:
        print(json.dumps(pk_worker(args)))
        return

    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from prunekit.api import calibration_data
    from prunekit.models.registry import builtin_dir
    from prunekit.reports.report import machine, versions

    peer = not args.skip_peer
    if peer and not Path(args.peer_python).exists():
        sys.exit(
            f"llm-compressor venv not found at {args.peer_python}; see this script's docstring"
        )
    tokenizer = AutoTokenizer.from_pretrained(builtin_dir(args.model))
    ids, calib = calibration_data(tokenizer, "python", args.samples, args.seq_len, 0)
    base = [sys.executable, __file__, "--pk-worker", "--model", args.model]
    base += ["--seq-len", str(args.seq_len), "--ppl-tokens", str(args.ppl_tokens)]
    base += ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_file({"input_ids": ids.contiguous()}, f"{tmp}/ids.safetensors")
        # each prunekit variant (forward dtype × stream) against the same peer run
        variants = [(f, st) for f in args.forward_dtype.split(",") for st in args.stream.split(",")]
        for i, config in enumerate(args.configs.split(",")):
            method, pattern = config.split(":", 1)
            pks = {}
            for j, (fdtype, stream) in enumerate(variants):
                print(
                    f"prunekit {config} forwards {fdtype or 'float32'} stream {stream} …",
                    file=sys.stderr,
                    flush=True,
                )
                cmd = [*base, "--ids", f"{tmp}/ids.safetensors", "--config", config]
                cmd += ["--forward-dtype", fdtype, "--stream", stream]
                pks[fdtype, stream] = _run(cmd + (["--dense-forward"] if i == j == 0 else []))
            lc = None
            if peer:
                print(f"llm-compressor {config} …", file=sys.stderr, flush=True)
                out = f"{tmp}/peer-{method}-{pattern.replace(':', '_')}"
                structure = "0:0" if pattern == "unstructured" else pattern
                cmd = [args.peer_python, str(HERE / "llmcompressor_reference.py"), "--lc-worker"]
                cmd += ["--ids", f"{tmp}/ids.safetensors", "--model-dir"]
                cmd += [str(builtin_dir(args.model)), "--method", method, "--structure"]
                cmd += [structure, "--out", out, "--threads", str(args.threads)]
                lc = _run(cmd)
                lc["loadavg_1m"] = os.getloadavg()[0]
                if "error" not in lc:
                    lc.update(_run([*base, "--eval-dir", out]))
            for (fdtype, stream), pk in pks.items():
                row = {"method": method, "pattern": pattern, "forward_dtype": fdtype or "float32"}
                row["stream"] = stream
                row["prunekit"] = pk
                if lc is not None:
                    row["llmcompressor"] = lc
                    row["ratio"] = {
                        k: _ratio(pk, lc, k)
                        for k in ("prune_s", "cpu_s", "peak_rss_mb", "peak_anon_mb", "ppl")
                    }
                rows.append(row)
    add_bands(rows)
    dense_forward = rows[0]["prunekit"] if rows else {}
    meta = {
        "model": args.model,
        "calibration": calib,
        "ppl_tokens": args.ppl_tokens,
        "forward_dtype": args.forward_dtype or "float32",  # the variants, in row order
        "stream": args.stream,
        "dense_forward_s": dense_forward.get("forward_s"),
        "dense_forward_cpu_s": dense_forward.get("forward_cpu_s"),
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"peers_{args.model}{'_' + args.tag if args.tag else ''}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = markdown(meta, rows)
    Path(f"{stem}.md").write_text(md)
    print(md)


def _f(v, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def markdown(meta: dict, rows: list[dict]) -> str:
    """The side-by-side table (every number read from the rows)."""
    lines = [
        f"# prunekit vs llm-compressor on `{meta['model']}`",
        "",
        f"{meta['calibration']['samples']} × {meta['calibration']['seq_len']} calibration windows "
        f"(the same ids on both sides), perplexity by prunekit on {meta['ppl_tokens']} held-out "
        f"Python tokens; float32 weights; llm-compressor forwards float32; prunekit forwards "
        "and stream per row (bfloat16 = autocast with float32 statistics; stream pruned = the "
        "published sequential method, dense = statistics on the dense stream). One dense "
        f"float32 forward over the calibration tokens: "
        f"{_f(meta['dense_forward_s'], '.1f')} s wall, {_f(meta['dense_forward_cpu_s'], '.1f')} s CPU. "
        "Paired ppl columns: the mean per-window NLL difference on the same held-out windows as a "
        "perplexity change, [±2 s.e.], and whether it is distinguishable (n.s. = not).",
        "",
        "| method | pattern | pk forwards, stream | prune s (pk / lc / ratio) | CPU s (pk / lc / ratio) "
        "| peak RSS MiB (pk / lc / ratio) | peak anonymous MiB (pk / lc / ratio) "
        "| ppl (pk / lc / ratio) | ppl pk vs lc (paired) | ppl vs pruned stream (paired) "
        "| prune ÷ dense fwd (pk) | load 1m (pk / lc) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fwd = meta["dense_forward_s"]
    for r in rows:
        pk, lc, ratio = r["prunekit"], r.get("llmcompressor", {}), r.get("ratio", {})

        def cell(key: str, fmt: str, pk=pk, lc=lc, ratio=ratio) -> str:
            return f"{_f(pk.get(key), fmt)} / {_f(lc.get(key), fmt)} / {_f(ratio.get(key), '.2f')}"

        per_fwd = pk["prune_s"] / fwd if fwd and "prune_s" in pk else None
        lines.append(
            f"| {r['method']} | {r['pattern']} | {r.get('forward_dtype', meta['forward_dtype'])}, "
            f"{r.get('stream', meta['stream'])} "
            f"| {cell('prune_s', '.1f')} | {cell('cpu_s', '.1f')} "
            f"| {cell('peak_rss_mb', '.0f')} | {cell('peak_anon_mb', '.0f')} "
            f"| {cell('ppl', '.3f')} | {band(r.get('vs_peer'))} "
            f"| {band(r.get('vs_pruned_stream'))} | {_f(per_fwd, '.2f')} "
            f"| {_f(pk.get('loadavg_1m'), '.1f')} / {_f(lc.get('loadavg_1m'), '.1f')} |"
        )
        for side in ("prunekit", "llmcompressor"):
            if "error" in r.get(side, {}):
                lines.append(f"|  | {side} failed: {r[side]['error']} | | | | | | | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
