"""Allocation benchmark: {Wanda, SparseGPT} × {uniform, OWL, NeuroAL} at several sparsities.

One process per model: the model is loaded once and its dense weights restored between runs
(same calibration windows for every run). Held-out Python perplexity after each run; the time of
each run (allocation + pruning) and its multiple of plain Wanda at the same sparsity. Results are
rewritten after every run to benchmarks/results/allocation_<model>.{json,md,png}.

    flock /tmp/prunekit-bench.lock python benchmarks/allocation.py --model smollm2-135m \\
        --samples 32 --seq-len 256 --ppl-tokens 16384
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--ppl-tokens", type=int, default=16384)
    p.add_argument("--sparsities", default="0.7,0.6,0.5")
    p.add_argument("--methods", default="wanda,sparsegpt")
    p.add_argument("--allocations", default="uniform,owl,neuroal")
    p.add_argument("--neuroal-samples", type=int, default=8)
    p.add_argument("--neuroal-grid", default="full", choices=["full", "coarse"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix for the result files")
    p.add_argument("--render-only", action="store_true", help="re-render md/png from the json")
    p.add_argument(
        "--sparsegpt-neuroal",
        default="reuse",
        choices=["reuse", "search"],
        help="reuse: SparseGPT+NeuroAL takes the block λ chosen by the Wanda+NeuroAL run at the "
        "same sparsity and searches only {0, Wanda's row λ} for the row step (SparseGPT's own "
        "default search uses those same Wanda masks); search: run the whole search again",
    )
    p.add_argument(
        "--lambdas-from",
        type=Path,
        default=None,
        help="an earlier allocation_<model>.json whose Wanda+NeuroAL λs `reuse` may take "
        "(to re-run SparseGPT rows without repeating the Wanda search)",
    )
    args = p.parse_args()
    if args.render_only:
        stem = RESULTS / f"allocation_{args.model}{args.tag}"
        data = json.loads(Path(f"{stem}.json").read_text())
        write(args, data["meta"], data["rows"], final=data["meta"]["complete"])
        return

    import torch

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.reports.report import machine, versions

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = prunekit.load_model(args.model)
    dense = {k: v.clone() for k, v in lm.model.state_dict().items()}
    windows, calib = calibration_data(lm.tokenizer, "python", args.samples, args.seq_len, 0)

    def ppl() -> dict:
        return prunekit.perplexity(
            lm.model, lm.tokenizer, "python", args.seq_len, args.ppl_tokens, progress=False
        )

    t0 = time.perf_counter()
    base = ppl()
    rows: list[dict] = [
        {
            "method": "dense",
            "ppl": base["ppl"],
            "window_nll": base["window_nll"],
            "eval_s": time.perf_counter() - t0,
        }
    ]
    print(f"dense ppl {base['ppl']:.3f} on {base['tokens']} tokens", file=sys.stderr, flush=True)
    meta = {
        "model": args.model,
        "calibration": calib,
        "batch_size": args.batch_size,
        "ppl_tokens": base["tokens"],
        "ppl_seq_len": args.seq_len,
        "neuroal_samples": args.neuroal_samples,
        "neuroal_grid": args.neuroal_grid,
        "sparsegpt_neuroal": args.sparsegpt_neuroal,
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    earlier = []
    if args.lambdas_from:
        earlier = json.loads(args.lambdas_from.read_text())["rows"][1:]
        meta["lambdas_from"] = str(args.lambdas_from)
    # sparsity-major, so each sparsity's comparison is complete before the next starts
    for s in (float(v) for v in args.sparsities.split(",")):
        for method in args.methods.split(","):
            for alloc in args.allocations.split(","):
                lm.model.load_state_dict(dense)
                rows.append(one_run(lm, windows, args, method, s, alloc, rows + earlier))
                held_out = ppl()
                rows[-1]["ppl"] = held_out["ppl"]
                rows[-1]["window_nll"] = held_out["window_nll"]
                r = rows[-1]
                print(
                    f"{method} {alloc} s={s}: ppl {r['ppl']:.3f} run {r['run_s']:.1f}s "
                    f"achieved {r['achieved']:.5f}",
                    file=sys.stderr,
                    flush=True,
                )
                write(args, meta, rows)
    write(args, meta, rows, final=True)


def one_run(lm, windows, args, method: str, s: float, alloc: str, rows: list[dict]) -> dict:
    """Prune the (dense) model once; return the timings, achieved sparsity and chosen λs."""
    import prunekit

    opts, reused = None, None
    if alloc == "neuroal":
        opts = {"samples": args.neuroal_samples, "grid": args.neuroal_grid}
        if method == "sparsegpt" and args.sparsegpt_neuroal == "reuse":
            wanda = _find(rows, "wanda", "neuroal", s)
            if wanda is not None:
                reused = wanda["block_lambda"]
                opts["block_lambda"] = reused
                row_lam = wanda.get("row_lambda")
                opts["row_lambdas"] = sorted({0.0, row_lam}) if row_lam is not None else [0.0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = prunekit.prune(
        lm.model,
        lm.tokenizer,
        method=method,
        sparsity=s,
        calib=windows,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        allocation=alloc,
        allocation_options=opts,
        progress=False,
    )
    rep = result.report
    a = rep["allocation"]
    row = {
        "method": method,
        "sparsity": s,
        "allocation": alloc,
        "run_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,  # less sensitive than wall time to other jobs
        "allocation_s": rep["timings_s"]["allocation"],
        "prune_s": rep["timings_s"]["prune"],
        "achieved": rep["sparsity"]["achieved"],
        "block_sparsity": a["block_sparsity"],
        "row_histogram": a["row_histogram"],
    }
    if alloc == "owl":
        row["outlier_ratio"] = a["outlier_ratio"]
    if alloc == "neuroal":
        search = a["search"]
        rs = search.get("row_step")
        row.update(
            block_lambda=search["block_step"]["chosen_lambda"],
            row_lambda=rs["chosen_lambda"] if isinstance(rs, dict) else None,
            search_method=search["search_method"],
            objective=search["objective"],
            block_lambda_reused_from_wanda=reused is not None,
            candidates={
                k: search[k]["candidates"]
                for k in ("block_step", "row_step")
                if isinstance(search.get(k), dict)
            },
        )
    return row


def _find(rows: list[dict], method: str, allocation: str, sparsity: float) -> dict | None:
    """The run of `method` with `allocation` at `sparsity` (rows[0] is the dense model)."""
    return next(
        (
            r
            for r in rows[1:]
            if (r["method"], r["allocation"], r["sparsity"]) == (method, allocation, sparsity)
        ),
        None,
    )


def write(args: argparse.Namespace, meta: dict, rows: list[dict], final: bool = False) -> None:
    """(Re)write json/md/png after every run, so a cut-short benchmark keeps what it measured."""
    from prunekit.evaluation.perplexity import paired_nll_difference

    for r in rows[1:]:
        plain = _find(rows, "wanda", "uniform", r["sparsity"])
        r["x_plain_wanda"] = r["run_s"] / plain["run_s"] if plain else None
        uniform = _find(rows, r["method"], "uniform", r["sparsity"])
        if (
            r["allocation"] != "uniform"
            and uniform
            and "window_nll" in r
            and "window_nll" in uniform
        ):
            r["vs_uniform"] = paired_nll_difference(r["window_nll"], uniform["window_nll"])
        if plain and "cpu_s" in r and "cpu_s" in plain:
            r["x_plain_wanda_cpu"] = r["cpu_s"] / plain["cpu_s"]
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"allocation_{args.model}{args.tag}"
    meta["complete"] = final
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = render(meta, rows)
    Path(f"{stem}.md").write_text(md)
    from prunekit.reports.allocation_plots import (
        plot_block_profiles,
        plot_ppl_vs_sparsity,
        write_allocation_plots,
    )

    title = f"{args.model}: allocation × method"
    plot_ppl_vs_sparsity(rows[1:], title, Path(f"{stem}.png"), dense=rows[0]["ppl"])
    plot_block_profiles(rows[1:], args.model, Path(f"{stem}_blocks.png"))
    searched = [r for r in rows[1:] if r["allocation"] == "neuroal" and r.get("candidates")]
    if searched:  # the NeuroAL search at the highest sparsity: objective vs λ, blocks, rows
        r = max(searched, key=lambda r: r["sparsity"])
        search = {
            k: {"chosen_lambda": r[f"{k.split('_')[0]}_lambda"], "candidates": v}
            for k, v in r["candidates"].items()
        }
        alloc = {
            "name": f"NeuroAL, {r['method']} s={r['sparsity']}",
            "search": search,
            "block_sparsity": r["block_sparsity"],
            "planned_sparsity": r["sparsity"],
            "row_histogram": r["row_histogram"],
        }
        write_allocation_plots(alloc, RESULTS, f"{stem.name}_neuroal_search.png")
    if final:
        print(md)


def render(meta: dict, rows: list[dict]) -> str:
    m, c = meta["machine"], meta["calibration"]
    lines = [
        f"# Sparsity allocation on `{meta['model']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores shared with other jobs (times are indicative), "
        f"{meta['threads']} torch threads. Calibration: {c['samples']} × {c['seq_len']} tokens of "
        f"Python (seed 0); NeuroAL searches on the first {meta['neuroal_samples']} of those "
        f"windows over the {meta.get('neuroal_grid', 'full')} λ grid. Perplexity: "
        f"{meta['ppl_tokens']} held-out Python tokens in windows of {meta['ppl_seq_len']}. "
        f"Command: `{meta['command']}`",
        "",
        f"Dense perplexity: {rows[0]['ppl']:.3f}" + ("" if meta["complete"] else " (in progress)"),
        "",
        "| method | sparsity | allocation | ppl (python) | achieved | run time (s) | "
        "of which allocation (s) | × plain Wanda (wall) | CPU time (s) | × plain Wanda (CPU) | "
        "NeuroAL λ (block / row) | block sparsity range | ppl vs uniform (paired, ±2 s.e. interval) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows[1:]:
        lam = "—"
        if r["allocation"] == "neuroal":
            row_lam = r["row_lambda"] if r["row_lambda"] is not None else "—"
            lam = f"{r['block_lambda']} / {row_lam}"
            if r["block_lambda_reused_from_wanda"]:
                lam += " (block λ from the Wanda search, row λ of {0, Wanda's})"
        x = f"{r['x_plain_wanda']:.2f}" if r.get("x_plain_wanda") else "—"
        cpu = f"{r['cpu_s']:.1f}" if "cpu_s" in r else "—"
        xc = f"{r['x_plain_wanda_cpu']:.2f}" if r.get("x_plain_wanda_cpu") else "—"
        lo, hi = min(r["block_sparsity"]), max(r["block_sparsity"])
        lines.append(
            f"| {r['method']} | {r['sparsity']:.2f} | {r['allocation']} | {r['ppl']:.3f} | "
            f"{r['achieved']:.4f} | {r['run_s']:.1f} | {r['allocation_s']:.1f} | {x} | {cpu} | {xc} | "
            f"{lam} | "
            f"{lo:.3f}–{hi:.3f} | {_vs_uniform(r)} |"
        )
    lines += [
        "",
        "ppl vs uniform: the same scorer's uniform run on the same held-out windows; the change in "
        "perplexity from the mean per-window NLL difference d, as exp(d) − 1, and in brackets "
        "exp(d ± 2 s.e.) − 1. An interval that contains 0 (n.s.) is not distinguishable from "
        "uniform on these windows.",
    ]
    return "\n".join(lines) + "\n"


def _vs_uniform(r: dict) -> str:
    v = r.get("vs_uniform")
    if not v:
        return "—"
    lo, mid, hi = (100 * math.expm1(v["mean"] + k * 2 * v["se"]) for k in (-1, 0, 1))
    verdict = "" if abs(v["mean"]) >= 2 * v["se"] else " (n.s.)"
    return f"{mid:+.1f}% [{lo:+.1f}, {hi:+.1f}]{verdict}"


if __name__ == "__main__":
    main()
