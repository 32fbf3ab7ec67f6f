"""SAAP benchmark: {importance} × {per-block ratios} at fractions of the non-embedding parameters.

One gradient pass of the dense model on the calibration windows scores every importance (the
group scores of taylor_vector, taylor_element and fused all come from the same W·∂L/∂W sums);
each cell applies its plan to a fresh copy of the dense model. Held-out Python perplexity (the
same windows for every cell, bfloat16 forwards) with a paired ±2 s.e. band against LLM-Pruner's
setting (taylor_vector + uniform) at the same budget; total and non-embedding parameters. For the
cells named in --export: disk size and decode tok/s (batch 1 and 8) in a prunekit-free process
that loads the exported folder with trust_remote_code=True, as ratios to the dense model; for
--humaneval cells also HumanEval pass@1 (full, greedy, chat mode, bfloat16).

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/saap.py --targets 0.2,0.35 \\
        --export fused:adaptive:0.2,taylor_vector:uniform:0.2 --humaneval fused:adaptive:0.2

Writes benchmarks/results/saap_<model>.{json,md,png}, rewritten after every cell.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BASELINE = ("taylor_vector", "uniform")  # LLM-Pruner: one first-order score, one ratio everywhere

# Decode timing in a fresh interpreter that cannot import prunekit (isolated mode, no src path).
DECODE = r"""
import json, os, statistics, sys, time
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p, "prunekit"))]
import torch
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
folder, batch, new, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:
    import prunekit  # noqa: F401
    sys.exit("prunekit importable: the decode check must run without it")
except ImportError:
    pass
m = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.bfloat16).eval()
ids = torch.randint(100, 20000, (batch, 64))
def gen(n):
    t = time.perf_counter()
    with torch.no_grad():
        m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    return time.perf_counter() - t
gen(4)
times = [gen(new) - gen(1) for _ in range(repeats)]
print(json.dumps({"tok_s": batch * (new - 1) / statistics.median(times)}))
"""


def parse_cells(spec: str) -> set[tuple[str, str, float]]:
    """IMPORTANCE:RATIOS:TARGET,... → a set of cells."""
    out = set()
    for item in filter(None, (s.strip() for s in spec.split(","))):
        imp, ratios, target = item.split(":")
        out.add((imp, ratios, float(target)))
    return out


def decode_rate(folder: Path, batch: int, new: int, repeats: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    cmd = [sys.executable, "-I", "-c", DECODE, str(folder.resolve()), str(batch), str(new)]
    res = subprocess.run(
        [*cmd, str(repeats)], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir()
    )
    if res.returncode:
        raise RuntimeError(f"decode timing of {folder} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["tok_s"]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--samples", type=int, default=16, help="calibration windows for the gradients")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--ppl-tokens", type=int, default=16384)
    p.add_argument("--targets", default="0.2,0.35", help="fractions of non-embedding parameters")
    p.add_argument("--importances", default="taylor_vector,taylor_element,fused")
    p.add_argument("--ratios", default="uniform,skip,adaptive")
    p.add_argument("--export", default="", help="cells IMPORTANCE:RATIOS:TARGET to export + time")
    p.add_argument("--humaneval", default="", help="cells to run full HumanEval on")
    p.add_argument(
        "--humaneval-dense",
        action="store_true",
        help="also run HumanEval on the dense model (else the table cites code_eval.md's 54.9%%)",
    )
    p.add_argument("--decode-new", type=int, default=32)
    p.add_argument("--decode-repeats", type=int, default=3)
    p.add_argument("--tag", default="", help="suffix for the result files")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args()
    stem = RESULTS / f"saap_{args.model}{args.tag}"
    if args.render_only:
        data = json.loads(Path(f"{stem}.json").read_text())
        write(stem, data["meta"], data["rows"])
        return

    import torch

    import prunekit
    from prunekit.api import calibration_data
    from prunekit.calibration.context import RunContext
    from prunekit.evaluation.humaneval import run_humaneval
    from prunekit.export.checkpoint import save_checkpoint
    from prunekit.models.adapters import adapter_for
    from prunekit.models.registry import builtin_dir
    from prunekit.recovery.report import param_summary
    from prunekit.reports.report import machine, versions
    from prunekit.structural.importance import accumulate_gradients
    from prunekit.structural.saap import SaapConfig, apply_scores, score_groups

    exports, humaneval = parse_cells(args.export), parse_cells(args.humaneval)
    lm = prunekit.load_model(args.model)
    dense, tok = lm.model, lm.tokenizer
    adapter = adapter_for(dense)
    windows, calib = calibration_data(tok, "python", args.samples, args.seq_len, 0)
    out_dir = Path("runs") / "saap"
    out_dir.mkdir(parents=True, exist_ok=True)

    def evaluate(model) -> tuple[dict, torch.nn.Module]:
        """Held-out perplexity of a bfloat16 copy (returned for HumanEval)."""
        m16 = copy.deepcopy(model).to(torch.bfloat16)
        r = prunekit.perplexity(m16, tok, "python", 512, args.ppl_tokens, progress=False)
        return {"ppl": r["ppl"], "window_nll": r["window_nll"], "tokens": r["tokens"]}, m16

    meta = {
        "model": args.model,
        "calibration": calib,
        "ppl_tokens": args.ppl_tokens,
        "dtype": "float32 weights and gradients; bfloat16 perplexity, decode and HumanEval",
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    t0 = time.perf_counter()
    ev, m16 = evaluate(dense)
    dense_row = {"cell": "dense", **ev, **param_summary(dense, adapter)}
    dense_row["eval_s"] = time.perf_counter() - t0
    dense_dir = builtin_dir(args.model)
    if exports:
        dense_row["disk_bytes"] = folder_bytes(dense_dir)
        dense_row["decode_b1"] = decode_rate(dense_dir, 1, args.decode_new, args.decode_repeats)
        dense_row["decode_b8"] = decode_rate(dense_dir, 8, args.decode_new, args.decode_repeats)
    if args.humaneval_dense:
        dense_row["humaneval"] = run_humaneval(m16, tok, batch_size=8)["pass@1"]
    del m16
    rows = [dense_row]
    print(f"dense ppl {ev['ppl']:.3f}", file=sys.stderr, flush=True)
    write(stem, meta, rows)

    importances = args.importances.split(",")
    t, c0 = time.perf_counter(), time.process_time()
    fisher = "param_mix" in importances
    stats = accumulate_gradients(
        RunContext(dense, adapter, list(windows.split(args.batch_size))), fisher
    )
    meta["gradient_pass"] = {
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - c0,
        "tokens": int(windows.numel()),
    }
    for target in (float(v) for v in args.targets.split(",")):
        for imp in importances:
            cfg0 = SaapConfig(target=target, importance=imp)
            scored = score_groups(RunContext(dense, adapter, [], progress=False), cfg0, stats)
            for ratios in args.ratios.split(","):
                cfg = SaapConfig(target=target, importance=imp, ratios=ratios)
                model = copy.deepcopy(dense)
                t = time.perf_counter()
                section = apply_scores(RunContext(model, adapter, []), cfg, scored)
                ev, m16 = evaluate(model)
                row = {
                    "cell": f"{imp}:{ratios}:{target}",
                    "importance": imp,
                    "ratios": ratios,
                    "target": target,
                    **ev,
                    **param_summary(model, adapter),
                    "kv_groups": section["kinds"]["heads"]["groups_after"],
                    "ffn_widths": section["kinds"]["ffn"]["groups_after"],
                    "uniform_widths": section["uniform"],
                    "eval_s": time.perf_counter() - t,
                }
                key = (imp, ratios, target)
                if key in exports or key in humaneval:
                    folder = out_dir / row["cell"].replace(":", "-")
                    save_checkpoint(model, tok, folder)
                    row["disk_bytes"] = folder_bytes(folder)
                    row["decode_b1"] = decode_rate(folder, 1, args.decode_new, args.decode_repeats)
                    row["decode_b8"] = decode_rate(folder, 8, args.decode_new, args.decode_repeats)
                if key in humaneval:
                    row["humaneval"] = run_humaneval(m16, tok, batch_size=8)["pass@1"]
                del model, m16
                rows.append(row)
                print(f"{row['cell']}: ppl {row['ppl']:.3f}", file=sys.stderr, flush=True)
                write(stem, meta, rows)
    meta["complete"] = True
    write(stem, meta, rows)


def write(stem: Path, meta: dict, rows: list[dict]) -> None:
    """JSON with every number, a Markdown table and a plot, from the rows measured so far."""
    from prunekit.evaluation.perplexity import paired_nll_difference

    for r in rows[1:]:
        base = next(
            (
                b
                for b in rows[1:]
                if (b["importance"], b["ratios"]) == BASELINE and b["target"] == r["target"]
            ),
            None,
        )
        if base is not None and base is not r:
            r["vs_baseline"] = paired_nll_difference(r["window_nll"], base["window_nll"])
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    Path(f"{stem}.md").write_text(render(meta, rows))
    plot(stem, rows)


def _band(r: dict) -> str:
    d = r.get("vs_baseline")
    if not d:
        return "baseline" if r.get("importance") else "—"
    verdict = (
        "better"
        if d["mean"] + 2 * d["se"] < 0
        else "worse"
        if d["mean"] - 2 * d["se"] > 0
        else "n.s."
    )
    return f"{d['mean']:+.4f} ± {2 * d['se']:.4f} ({verdict})"


def render(meta: dict, rows: list[dict]) -> str:
    dense = rows[0]
    lines = [
        f"# SAAP structured pruning on {meta['model']}",
        "",
        f"Generated by `benchmarks/saap.py` (`{meta['command']}`); machine: {meta['machine']}; "
        f"{meta['dtype']}. Gradients: {meta['calibration']['samples']} × "
        f"{meta['calibration']['seq_len']} Python tokens"
        + (
            f", one pass of {meta['gradient_pass']['wall_s']:.0f} s wall / "
            f"{meta['gradient_pass']['cpu_s']:.0f} s CPU shared by every cell"
            if "gradient_pass" in meta
            else ""
        )
        + f". Perplexity on {dense['tokens']:,} held-out Python tokens. Δ NLL: per-window mean "
        "difference to taylor_vector + uniform (LLM-Pruner's setting) at the same target, ±2 s.e.; "
        "negative = better.",
        "",
        "| cell | params total | non-embedding | Python ppl | Δ NLL vs LLM-Pruner setting | "
        "kv groups min–max | FFN width min–max | decode tok/s b1 / b8 (× dense) | disk MB | "
        "HumanEval pass@1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = "—"
        if "decode_b1" in r:
            speed = f"{r['decode_b1']:.1f} / {r['decode_b8']:.1f}" + (
                f" ({r['decode_b1'] / dense['decode_b1']:.2f}× / "
                f"{r['decode_b8'] / dense['decode_b8']:.2f}×)"
                if "decode_b1" in dense and r is not dense
                else ""
            )
        kv = f"{min(r['kv_groups'])}–{max(r['kv_groups'])}" if "kv_groups" in r else "—"
        ffn = f"{min(r['ffn_widths'])}–{max(r['ffn_widths'])}" if "ffn_widths" in r else "—"
        lines.append(
            f"| {r['cell']} | {r['total']:,} | {r['non_embedding']:,} "
            f"({r['non_embedding'] / dense['non_embedding'] - 1:+.1%}) | {r['ppl']:.3f} | "
            f"{_band(r)} | {kv} | {ffn} | {speed} | "
            + (f"{r['disk_bytes'] / 1e6:.0f}" if "disk_bytes" in r else "—")
            + " | "
            + (f"{r['humaneval']:.1%}" if "humaneval" in r else "—")
            + " |"
        )
    if not meta.get("complete"):
        lines += ["", "_Incomplete: the run was still going or stopped early._"]
    return "\n".join(lines) + "\n"


def plot(stem: Path, rows: list[dict]) -> None:
    """Perplexity per cell, grouped by target, one colour per ratios rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = rows[1:]
    if not cells:
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    colours = {
        "uniform": "tab:grey",
        "skip": "tab:blue",
        "adaptive": "tab:red",
        "stable": "tab:green",
    }
    for i, r in enumerate(cells):
        ax.bar(i, r["ppl"], color=colours.get(r["ratios"], "k"))
    ax.axhline(rows[0]["ppl"], ls="--", color="k", lw=0.8, label="dense")
    ax.set_xticks(
        range(len(cells)), [r["cell"] for r in cells], rotation=60, ha="right", fontsize=7
    )
    ax.set_yscale("log")
    ax.set_ylabel("held-out Python perplexity (log scale)")
    for name, c in colours.items():
        ax.bar(0, 0, color=c, label=name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{stem}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
