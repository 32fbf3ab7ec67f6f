"""Structural pruning benchmark: dense vs vocabulary / depth / width / the full recipe, on a CPU.

Every variant is exported as a checkpoint and measured in a fresh subprocess that imports only
transformers (so the export is proven to load without prunekit): CPU prefill and decode tokens/s
at batch 1 and that process's peak RSS; size on disk; held-out Python perplexity (prunekit.api).
Writes benchmarks/results/structural_<model>.{json,md} and PNGs (trade-off curve, depth scores).

    flock /tmp/prunekit-bench.lock python benchmarks/structural.py --model qwen2.5-coder-0.5b
    flock /tmp/prunekit-bench.lock python benchmarks/structural.py --gemma   # vocab step on gemma3-270m
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SCRATCH = Path("/tmp/prunekit-structural-bench")

SPEED_CODE = r"""
import json, statistics, sys, time, torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(int(sys.argv[2]))
t0 = time.perf_counter()
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
load_s = time.perf_counter() - t0
assert 'prunekit' not in sys.modules
prefill, decode, repeats = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, m.config.vocab_size, (1, prefill), generator=g)
pre, dec, pre_cpu, dec_cpu = [], [], [], []
with torch.no_grad():
    m(ids[:, :8])  # warm-up
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = m(ids, use_cache=True)
        pre.append(prefill / (time.perf_counter() - t)); pre_cpu.append(prefill / (time.process_time() - c))
        pkv, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(decode):
            out = m(nxt, past_key_values=pkv, use_cache=True)
            pkv, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        dec.append(decode / (time.perf_counter() - t)); dec_cpu.append(decode / (time.process_time() - c))
# VmHWM belongs to this process's own address space (ru_maxrss would include the forking parent's)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"prefill_tok_s": statistics.median(pre), "decode_tok_s": statistics.median(dec),
                  "prefill_tok_cpu_s": statistics.median(pre_cpu), "decode_tok_cpu_s": statistics.median(dec_cpu),
                  "peak_rss_mb": hwm / 1024, "load_s": load_s}))
"""


_SPEED: dict[tuple, dict] = {}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def time_export(out: Path, args) -> dict:
    """Speed of an exported checkpoint, in a prunekit-free subprocess."""
    cmd = [
        sys.executable,
        "-c",
        SPEED_CODE,
        str(out),
        str(args.speed_threads),
        str(args.prefill),
        str(args.decode),
        str(args.repeats),
    ]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure_export(model, tokenizer, name: str, args) -> dict:
    """Export, then time it in a prunekit-free subprocess; size on disk; delete the export.

    Speed and size depend only on the shapes, so one measurement per shape is reused. With
    --defer-speed the export is kept and timed later by --speed-only (under the bench lock).
    """
    from prunekit.export.checkpoint import save_checkpoint

    cfg = model.config
    shape = (cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size)
    if shape in _SPEED:
        return dict(_SPEED[shape])
    out = SCRATCH / _slug(name)
    shutil.rmtree(out, ignore_errors=True)
    save_checkpoint(model, tokenizer, out)
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    if args.defer_speed:
        _SPEED[shape] = {"disk_mb": size / 2**20, "speed_from": name, "export_dir": str(out)}
        return dict(_SPEED[shape])
    speed = time_export(out, args)
    shutil.rmtree(out, ignore_errors=True)
    _SPEED[shape] = {"disk_mb": size / 2**20, **speed, "speed_from": name}
    return dict(_SPEED[shape])


def speed_only(args, save) -> dict:
    """Time the exports a --defer-speed run left behind and fill in every row of the same shape."""
    result = json.loads((RESULTS / f"structural_{args.tag}.json").read_text())
    for row in result["rows"]:
        if "decode_tok_s" in row or "export_dir" not in row:
            continue
        if not Path(row["export_dir"]).is_dir():
            print(f"{row['variant']}: export {row['export_dir']} is gone; not timed", flush=True)
            continue
        speed = time_export(Path(row["export_dir"]), args)
        print(row["speed_from"], json.dumps(speed), flush=True)
        for other in result["rows"]:
            if other.get("export_dir") == row["export_dir"]:
                other.update(speed)
        if not args.keep_exports:
            shutil.rmtree(row["export_dir"], ignore_errors=True)
        save(result)
    result["settings"].update(
        speed_threads=args.speed_threads,
        prefill=args.prefill,
        decode=args.decode,
        repeats=args.repeats,
    )
    return result


def evaluate(name: str, model, tokenizer, args, extra: dict | None = None) -> dict:
    from prunekit import api
    from prunekit.reports.report import param_counts

    t0 = time.perf_counter()
    ppl = api.perplexity(
        model, tokenizer, "python", args.ppl_seq_len, args.ppl_tokens, 2, "cpu", False
    )
    row = {
        "variant": name,
        "params": param_counts(model)["total"],
        "layers": model.config.num_hidden_layers,
        "ffn": model.config.intermediate_size,
        "vocab": model.config.vocab_size,
        "ppl": ppl["ppl"],
        "ppl_tokens": ppl["tokens"],
        "ppl_s": time.perf_counter() - t0,
        **measure_export(model, tokenizer, name, args),
        **(extra or {}),
    }
    print(
        json.dumps(
            {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in row.items()
                if k not in ("order",)
            }
        ),
        flush=True,
    )
    return row


def calib(tokenizer, samples: int, seq_len: int, batch: int = 4):
    from prunekit.api import calibration_data

    windows, desc = calibration_data(tokenizer, "python", samples, seq_len, 0)
    return list(windows.split(batch)), desc


def run(args, save) -> dict:
    """Measure every variant; `save(result)` is called after each row so partial runs keep results."""
    import torch

    import prunekit
    from prunekit.calibration.context import RunContext
    from prunekit.config.depth import DepthConfig
    from prunekit.config.width import WidthConfig
    from prunekit.data.sources import resolve_source
    from prunekit.models.adapters import adapter_for
    from prunekit.reports.report import machine, versions
    from prunekit.structural.depth import greedy_depth, plot_depth_scores, remove_layers
    from prunekit.structural.vocabulary import prune_vocabulary
    from prunekit.structural.width import prune_width

    torch.set_num_threads(args.threads)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    lm = prunekit.load_model(args.model)
    dense, tok = lm.model, lm.tokenizer
    ad = adapter_for(dense)
    result = {
        "model": args.model,
        "machine": machine(),
        "versions": versions(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("gemma",)},
        "rows": [],
        "scoring_s": {},
        "depth_rounds": {},
    }
    rows, timings, rounds = result["rows"], result["scoring_s"], result["depth_rounds"]
    want = set(args.only.split(",")) if args.only else None

    def on(group: str) -> bool:
        return want is None or group in want

    def add(row: dict) -> None:
        rows.append(row)
        save(result)

    if on("dense"):
        add(evaluate("dense", dense, tok, args))

    vm = copy.deepcopy(dense)
    t0 = time.perf_counter()
    vtok, vrep = prune_vocabulary(vm, tok, ad, resolve_source("python", "calib").documents())
    timings["vocabulary"] = time.perf_counter() - t0
    if on("vocab"):
        add(evaluate("vocabulary", vm, vtok, args, {"vocab_report": vrep}))

    if on("full"):
        # the recipe: vocabulary → depth (kl, scored on the vocab-pruned model) → width (activation)
        res = None
        if max(args.full_k) > 0:
            batches, _ = calib(vtok, args.depth_samples, args.depth_seq_len)
            t0 = time.perf_counter()
            res = greedy_depth(
                RunContext(vm, ad, batches), DepthConfig(remove=max(args.full_k), criterion="kl")
            )
            timings[f"full_depth_kl_k{max(args.full_k)}"] = time.perf_counter() - t0
            rounds["after_vocab_kl"] = res.to_dict()
            plot_depth_scores(
                res,
                RESULTS / f"structural_{args.tag}_depth_full_kl.png",
                f"{args.model}: greedy depth (kl) after vocabulary pruning",
            )
        for k in args.full_k:
            for keep in [1.0, *args.full_keep]:
                if k == 0 and keep == 1.0:
                    continue  # = vocabulary only
                m = copy.deepcopy(vm)
                if k:
                    remove_layers(m, ad, res.removed[:k])
                if keep < 1:
                    wb, _ = calib(vtok, args.width_samples, args.depth_seq_len)
                    cfg = WidthConfig(
                        ffn_keep=keep, criterion=args.full_width_criterion, multiple=args.multiple
                    )
                    prune_width(RunContext(m, ad, wb, "cpu", False), cfg)
                name = (
                    "vocab"
                    + (f" + depth kl k={k}" if k else "")
                    + (f" + width {args.full_width_criterion} {keep}" if keep < 1 else "")
                )
                add(
                    evaluate(
                        name,
                        m,
                        vtok,
                        args,
                        {"removed": res.removed[:k] if k else [], "ffn_keep": keep},
                    )
                )
                del m
    del vm

    if on("width"):
        for crit in args.width_criteria.split(","):
            m = copy.deepcopy(dense)
            n = args.taylor_samples if crit == "taylor" else args.width_samples
            batches, _ = calib(tok, n, args.depth_seq_len, 2 if crit == "taylor" else 4)
            t0 = time.perf_counter()
            cfg = WidthConfig(ffn_keep=args.ffn_keep, criterion=crit, multiple=args.multiple)
            prune_width(RunContext(m, ad, batches, "cpu", True), cfg)
            timings[f"width_{crit}"] = time.perf_counter() - t0
            add(evaluate(f"width {crit} {args.ffn_keep}", m, tok, args))
            del m

    if on("depth"):
        batches, _ = calib(tok, args.depth_samples, args.depth_seq_len)
        done: dict[tuple, dict] = {}  # same layers removed → same model → same perplexity
        crits = [(c, False) for c in args.criteria.split(",")] + [
            ("cosine", True)
        ] * args.last_token
        for crit, last in crits:
            label = crit + ("_last" if last else "")
            t0 = time.perf_counter()
            res = greedy_depth(
                RunContext(dense, ad, batches),
                DepthConfig(remove=max(args.depth_k), criterion=crit, last_token=last),
            )
            timings[f"depth_{label}_k{max(args.depth_k)}"] = time.perf_counter() - t0
            rounds[f"dense_{label}"] = res.to_dict()
            plot_depth_scores(
                res,
                RESULTS / f"structural_{args.tag}_depth_{label}.png",
                f"{args.model}: greedy depth, {label} (dense model)",
            )
            for k in args.depth_k:
                key = tuple(sorted(res.removed[:k]))
                if key in done:
                    add(
                        {
                            **done[key],
                            "variant": f"depth {label} k={k}",
                            "same_model_as": done[key]["variant"],
                        }
                    )
                    continue
                m = copy.deepcopy(dense)
                remove_layers(m, ad, res.removed[:k])
                done[key] = evaluate(
                    f"depth {label} k={k}", m, tok, args, {"removed": res.removed[:k]}
                )
                add(done[key])
                del m
    return result


def gemma(args) -> dict:
    import torch

    import prunekit
    from prunekit.data.sources import resolve_source
    from prunekit.models.adapters import adapter_for
    from prunekit.reports.report import machine, param_counts, versions
    from prunekit.structural.vocabulary import prune_vocabulary

    torch.set_num_threads(args.threads)
    lm = prunekit.load_model("gemma3-270m")
    before = param_counts(lm.model)["total"]
    ppl_before = prunekit.perplexity(
        lm.model, lm.tokenizer, "python", args.ppl_seq_len, args.ppl_tokens, 2, "cpu", False
    )
    t0 = time.perf_counter()
    tok, rep = prune_vocabulary(
        lm.model, lm.tokenizer, adapter_for(lm.model), resolve_source("python", "calib").documents()
    )
    secs = time.perf_counter() - t0
    ppl_after = prunekit.perplexity(
        lm.model, tok, "python", args.ppl_seq_len, args.ppl_tokens, 2, "cpu", False
    )
    after = param_counts(lm.model)["total"]
    return {
        "model": "gemma3-270m",
        "machine": machine(),
        "versions": versions(),
        "params_before": before,
        "params_after": after,
        "vocabulary": rep,
        "seconds": secs,
        "ppl_before": ppl_before,
        "ppl_after": ppl_after,
    }


def write_md(result: dict, path: Path, tag: str) -> None:
    nan = float("nan")
    rows = result["rows"]
    dense = next((r for r in rows if r["variant"] == "dense"), None)
    s = result["settings"]
    lines = [
        f"# Structural pruning on `{result['model']}` (CPU, one-shot, no recovery training)",
        "",
        f"Command: `{result.get('command', '')}`"
        + (f"; timing phase: `{result['speed_command']}`" if result.get("speed_command") else ""),
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; {s['threads']} torch threads for "
        f"scoring/perplexity, {s['speed_threads']} for the speed process; "
        "shared with other engineers' jobs while it ran (load average 4–9 on 2 cores): wall-clock rates are "
        "depressed and noisy, so the speed-up column uses **CPU time** (tokens per CPU-second of the "
        "measuring process), which contention distorts much less.",
        "",
        "Settings (scaled down for 2 shared CPU cores): "
        f"perplexity on the held-out split of the `python` corpus (first {s['ppl_tokens']} tokens, windows of "
        f"{s['ppl_seq_len']}); depth scoring on {s['depth_samples']}×{s['depth_seq_len']} calibration tokens; "
        f"width (activation) on {s['width_samples']}×{s['depth_seq_len']}; "
        f"speed at batch 1: prefill {s['prefill']} tokens, then {s['decode']} greedy decode steps with the KV cache, "
        f"median of {s['repeats']}, float32, each checkpoint loaded in a fresh prunekit-free process "
        "(peak RSS = that process's VmHWM: load + inference; speed/size measured once per shape). "
        "Vocabulary corpus: `python` calibration split (disjoint files from the held-out split). "
        "HumanEval: not run (164 generations per variant are hours on this CPU).",
        "",
        "| variant | params | vs dense | layers | FFN | vocab | disk MiB | ppl python | vs dense | prefill tok/s (wall) | decode tok/s (wall) | decode tok/CPU-s | decode speed-up (CPU time) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dp = f"{r['params'] / dense['params'] - 1:+.1%}" if dense else "—"
        dppl = f"{r['ppl'] / dense['ppl'] - 1:+.1%}" if dense else "—"
        ref = result.get("window_dense", {}).get(str(r.get("timing_window")), dense)
        dx = (
            f"{r['decode_tok_cpu_s'] / ref['decode_tok_cpu_s']:.2f}×"
            + ("†" if r.get("timing_window") else "")
            if ref and "decode_tok_cpu_s" in r and "decode_tok_cpu_s" in ref
            else "—"
        )
        lines.append(
            f"| {r['variant']} | {r['params'] / 1e6:.1f}M | {dp} | {r['layers']} | {r['ffn']} | {r['vocab']:,} | "
            f"{r['disk_mb']:.0f} | {r['ppl']:.3f} | {dppl} | {r.get('prefill_tok_s', nan):.1f} | {r.get('decode_tok_s', nan):.2f} | "
            f"{r.get('decode_tok_cpu_s', nan):.2f} | {dx} | {r.get('peak_rss_mb', nan):.0f} |"
        )
    if any(r.get("timing_window") for r in rows):
        wd = result["window_dense"]["2"]
        lines += [
            "",
            "† timed later, while another benchmark held both cores (load 4–5): these rows are "
            "compared with the dense model re-timed in that window "
            f"({wd['decode_tok_s']:.2f} decode tok/s wall, {wd['decode_tok_cpu_s']:.2f} per CPU-s), "
            "and are much noisier than the rest (the un-marked rows were timed back to back in a quiet "
            "window, see structural_qwen2.5-coder-0.5b_full-output.md).",
        ]
    untimed = [r["variant"] for r in rows if "decode_tok_s" not in r]
    if untimed:
        lines += [
            "",
            f"Speed not measured yet for {len(untimed)} rows (empty columns): their exports await "
            "`--speed-only` (the timing phase).",
        ]
    lines += ["", "Removal order (original layer indices), greedy with re-scoring:"]
    for k, v in result.get("depth_rounds", {}).items():
        lines.append(f"- {k}: {v['removed']}")
    lines += [
        "",
        "Scoring wall times (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["scoring_s"].items()),
    ]
    lines += ["", f"![trade-off](structural_{tag}_tradeoff.png)"]
    path.write_text("\n".join(lines) + "\n")


def plot_tradeoff(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    dense = next(r for r in rows if r["variant"] == "dense")
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        x = 100 * (1 - r["params"] / dense["params"])
        y = r["ppl"] / dense["ppl"]
        marker = (
            "o"
            if r["variant"].startswith("vocab +")
            else ("s" if r["variant"].startswith("depth") else "^")
        )
        ax.scatter(x, y, marker=marker)
        ax.annotate(r["variant"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.axhline(1.15, ls="--", color="grey", lw=0.8)
    ax.axvline(22, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("parameters removed (%)")
    ax.set_ylabel("held-out Python ppl / dense ppl")
    ax.set_title(f"{result['model']}: parameters removed vs perplexity (dashed: targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--tag", default=None, help="results name (default: model)")
    p.add_argument(
        "--threads", type=int, default=2, help="torch threads for scoring and perplexity"
    )
    p.add_argument(
        "--speed-threads",
        type=int,
        default=1,
        help="threads of the speed process (1: CPU time is not inflated by spin-waiting threads)",
    )
    p.add_argument("--ppl-tokens", type=int, default=8192)
    p.add_argument("--ppl-seq-len", type=int, default=512)
    p.add_argument("--depth-samples", type=int, default=4)
    p.add_argument("--depth-seq-len", type=int, default=256)
    p.add_argument("--depth-k", type=int, nargs="+", default=[2, 4])
    p.add_argument("--criteria", default="kl,cosine,angular")
    p.add_argument(
        "--last-token", type=int, default=1, help="also run cosine with the last-token variant"
    )
    p.add_argument("--width-samples", type=int, default=16)
    p.add_argument("--taylor-samples", type=int, default=4)
    p.add_argument("--width-criteria", default="activation")
    p.add_argument("--ffn-keep", type=float, default=0.9)
    p.add_argument("--multiple", type=int, default=64)
    p.add_argument("--full-width-criterion", default="activation")
    p.add_argument("--full-k", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--full-keep", type=float, nargs="*", default=[0.9])
    p.add_argument("--prefill", type=int, default=128)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=None, help="comma list of: dense,vocab,depth,width,full")
    p.add_argument("--gemma", action="store_true", help="vocabulary step alone on gemma3-270m")
    p.add_argument(
        "--defer-speed", action="store_true", help="keep exports; time them later with --speed-only"
    )
    p.add_argument(
        "--speed-only", action="store_true", help="time the exports a --defer-speed run kept"
    )
    p.add_argument(
        "--keep-exports", action="store_true", help="with --speed-only: do not delete the exports"
    )
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.gemma:
        result = gemma(args)
        result["command"] = " ".join(sys.argv)
        (RESULTS / "structural_gemma3-270m_vocab.json").write_text(json.dumps(result, indent=2))
        v = result["vocabulary"]
        (RESULTS / "structural_gemma3-270m_vocab.md").write_text(
            "# Vocabulary pruning on `gemma3-270m` (python corpus)\n\n"
            f"Command: `{result['command']}` on {result['machine']['cpu']}.\n\n"
            "| | before | after |\n|---|---|---|\n"
            f"| parameters | {result['params_before']:,} | {result['params_after']:,} ({result['params_after'] / result['params_before'] - 1:+.1%}) |\n"
            f"| tokens | {v['tokens_before']:,} | {v['tokens_kept']:,} |\n"
            f"| held-out Python ppl ({result['ppl_before']['tokens']} / {result['ppl_after']['tokens']} tokens) | {result['ppl_before']['ppl']:.3f} | {result['ppl_after']['ppl']:.3f} |\n\n"
            f"Kept: {v['kept_from_corpus']:,} corpus tokens, {v['kept_for_merge_chains']:,} for merge chains, "
            f"{v['kept_special_added']:,} special/added, {v['kept_base']:,} base (byte fallback); merges {v['merges_before']:,} → {v['merges_after']:,}. "
            f"Tied embeddings: {v['tied']}. Step time {result['seconds']:.0f} s.\n"
        )
        print(json.dumps({k: result[k] for k in ("params_before", "params_after")}))
        return
    tag = args.tag or args.model
    args.tag = tag

    def save(result: dict) -> None:
        result["speed_command" if args.speed_only else "command"] = " ".join(sys.argv)
        result["wall_s"] = time.perf_counter() - t0
        (RESULTS / f"structural_{tag}.json").write_text(json.dumps(result, indent=2))
        write_md(result, RESULTS / f"structural_{tag}.md", tag)
        if any(r["variant"] == "dense" for r in result["rows"]):
            plot_tradeoff(result, RESULTS / f"structural_{tag}_tradeoff.png")

    result = speed_only(args, save) if args.speed_only else run(args, save)
    save(result)
    print((RESULTS / f"structural_{tag}.md").read_text())


if __name__ == "__main__":
    main()
