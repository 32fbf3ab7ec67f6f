"""Acceptance benchmark for code evaluation: HumanEval pass@1 (greedy, full 164 problems),
generation time and tokens/s, and speed/memory/size of the dense model and pruned runs.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/code_eval.py

Runs (each written as soon as it finishes, so a long run keeps its progress):
  benchmarks/results/code_eval/<label>/report.json + humaneval_problems.jsonl
and then one comparison of everything present:
  benchmarks/results/code_eval.md, code_eval.json, code_eval.png
Pruned runs default to runs/wanda50 and runs/sg24 when they exist (their report.json —
method, params, perplexity — is carried over). Use --resume to skip finished models.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "cores_visible": os.cpu_count(),
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Flags"):
                value = value.strip()
                if key.strip() == "Flags":
                    value = " ".join(f for f in value.split() if f.startswith(("avx512", "amx")))
                info[key.strip()] = value
    except (OSError, subprocess.SubprocessError):
        pass
    import torch
    import transformers

    info.update(
        torch=torch.__version__,
        transformers=transformers.__version__,
        torch_threads=torch.get_num_threads(),
    )
    return info


def eval_args(model: str, argv: list[str]) -> argparse.Namespace:
    from prunekit.cli import eval_code

    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    eval_code.register_args(p)
    return p.parse_args([model, *argv])


def evaluate(spec: str, label: str, out_root: Path, opts: argparse.Namespace) -> Path:
    """HumanEval + speed for one model; writes <out_root>/<label>/report.json."""
    from prunekit.cli import eval_code
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.utils import reset_peak_rss

    out_dir = out_root / label
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        "--dtype",
        opts.dtype,
        "--max-new-tokens",
        str(opts.max_new_tokens),
        "--gen-batch-size",
        str(opts.batch_size),
    ]
    if not opts.skip_humaneval:
        argv += ["--humaneval", "--mode", opts.mode]
    if opts.limit:
        argv += ["--limit", str(opts.limit)]
    if not opts.skip_speed:
        argv += ["--speed", "--speed-repeats", str(opts.speed_repeats)]
    args = eval_args(spec, argv)
    device = resolve_device(args.device)
    src = Path(spec) / "report.json"
    report = json.loads(src.read_text()) if src.is_file() else {}
    previous = out_dir / "report.json"  # sections not re-run this time are kept
    kept = json.loads(previous.read_text()).get("evaluation", {}) if previous.is_file() else {}
    gc.collect()  # the previous model's memory goes before this model's peak is counted
    rss_reset = reset_peak_rss()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    lm = load_model(spec, args.dtype)
    lm.model.to(device)
    load_s = time.perf_counter() - t0
    sections = eval_code.run(args, lm, device, out_dir)
    # speed in other dtypes (same process, same model weights cast)
    extra_speed = {}
    if not opts.skip_speed:
        import torch

        from prunekit.evaluation.speed import measure_speed
        from prunekit.models.loading import cpu_has_bf16

        extra = opts.extra_speed_dtypes
        if extra is None:  # emulated bfloat16 would only measure the emulation
            extra = ["bfloat16"] if cpu_has_bf16() else []
        for dt in extra:
            if dt == opts.dtype:
                continue
            lm.model.to(getattr(torch, dt))
            gc.collect()
            reset_peak_rss()
            extra_speed[dt] = measure_speed(
                lm.model, device, spec=spec, repeats=opts.speed_repeats, progress=True
            )
            lm.model.to(getattr(torch, opts.dtype))
    report.setdefault("model", lm.info)
    if "params" not in report and "speed" in sections:
        report["params"] = sections["speed"]["params"]
    evaluation = report.setdefault("evaluation", {})
    evaluation.update({**kept, **sections})
    if extra_speed:
        evaluation["speed_other_dtypes"] = extra_speed
    report["benchmark"] = {
        "script": "benchmarks/code_eval.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model_spec": spec,
        "eval_args": argv,
        "machine": machine(),
        "load_s": round(load_s, 2),
        # peak RSS is this model's alone (load + run) where the kernel lets us reset the count
        "peak_rss_per_model": rss_reset,
        "total_s": round(time.perf_counter() - t0, 2),
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out_dir / 'report.json'}", flush=True)
    return out_dir


def evaluate_in_fresh_process(spec: str, label: str, opts: argparse.Namespace) -> Path:
    """evaluate() in a new interpreter: a model's peak RSS must not include what the previous
    model left resident (freed tensors glibc keeps, page cache of mapped weights)."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(
        target=evaluate, args=(spec, label, opts.out, opts)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"evaluating {label} ({spec}) failed with exit code {child.exitcode}")
    return opts.out / label


def compare_all(folders: list[Path], out: Path) -> None:
    from prunekit.reports.compare import (
        load_entry,
        metrics,
        plot,
        problem_diffs,
        render_markdown,
        render_text,
        table,
    )

    entries = [load_entry(f) for f in folders]
    headers, rows = table(entries)
    print(render_text(headers, rows))
    diffs = problem_diffs(entries)
    plot(entries, out.with_suffix(".png"))
    lines = [
        "# Code evaluation benchmark",
        "",
        "Produced by `benchmarks/code_eval.py` (numbers are read from the reports; nothing "
        "is typed in by hand).",
        "",
        render_markdown(headers, rows),
        "",
    ]
    for d in diffs:
        lines.append(
            f"- HumanEval vs {d['against']}: {d['run']} lost {len(d['lost'])}, gained "
            f"{len(d['gained'])} of {d['common']} problems ({d['both_pass']} pass in both)."
        )
    lines.append("")
    summary = []
    for e in entries:
        m = metrics(e.report)
        bench = e.report.get("benchmark", {})
        he = e.report.get("evaluation", {}).get("humaneval", {})
        en = e.report.get("evaluation", {}).get("energy", {})
        summary.append(
            {
                "run": e.label,
                **{k: v for k, v in m.items() if k != "ppl"},
                "ppl": m["ppl"],
                "humaneval_generated_tokens": he.get("generated_tokens"),
                "humaneval_generation_s": he.get("generation_s"),
                "outcomes": he.get("outcomes"),
                "energy": en,
                "machine": bench.get("machine"),
                "loadavg_start": bench.get("loadavg_start"),
                "loadavg_end": bench.get("loadavg_end"),
            }
        )
        lines.append(f"## {e.label}")
        if he:
            lines.append(
                f"- HumanEval: {he.get('problems')} problems, mode {he.get('mode')}, "
                f"{he.get('decoding')}, pass@1 {he.get('pass@1', 0) * 100:.1f}% "
                f"({he.get('solved')} solved); outcomes {he.get('outcomes')}"
            )
            lines.append(
                f"- generation: {he.get('generated_tokens')} tokens in "
                f"{he.get('generation_s')} s ({he.get('tokens_per_s')} tok/s, batch "
                f"{he.get('batch_size')}); execution {he.get('execution_s')} s; "
                f"HumanEval wall {he.get('wall_s')} s"
            )
        if en:
            lines.append(
                f"- energy ({en.get('method')}, measured={en.get('measured')}): "
                f"{en.get('energy_j')} J, {en.get('co2_kg', 0) * 1000:.2f} g CO2 — "
                f"{en.get('note')}"
            )
        ev = e.report.get("evaluation", {})
        speeds = [ev.get("speed"), *(ev.get("speed_other_dtypes") or {}).values()]
        for sp in speeds:
            if not sp:
                continue
            dec = sp["decode"]
            lines.append(
                f"- speed [{sp['dtype']}, {sp['threads']} threads, median of {sp['repeats']}]: "
                f"prefill {sp['prefill']['tokens_per_s']} tok/s @ {sp['prefill']['prompt_len']}; "
                + "; ".join(
                    f"decode batch {v['batch']} {v['tokens_per_s']} tok/s"
                    for k, v in dec.items()
                    if k.startswith("batch_")
                )
                + f"; peak RSS {sp['memory']['peak_rss_mb']} MiB; weights in memory "
                f"{sp['memory']['weights_in_memory_mb']} MiB; disk "
                f"{(sp['disk']['bytes'] or 0) / 2**20:.1f} MiB; "
                f"{sp['flops_per_token']['dense'] / 1e9:.3f} GFLOP/token dense, "
                f"{sp['flops_per_token']['ideal_sparse'] / 1e9:.3f} if zeros were skipped"
            )
        if bench:
            mach = bench.get("machine", {})
            lines.append(
                f"- machine: {mach.get('Model name')}, {mach.get('CPU(s)')} CPUs "
                f"({mach.get('Flags')}); torch threads {mach.get('torch_threads')}; "
                f"load average at start {bench.get('loadavg_start')} / end "
                f"{bench.get('loadavg_end')} (the machine is shared)"
            )
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out.with_suffix('.md')}, .json, .png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="LABEL=SPEC pairs (default: dense=qwen2.5-coder-0.5b and "
        "wanda50=runs/wanda50, sg24=runs/sg24 when present)",
    )
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--mode", default="auto", choices=["auto", "chat", "completion"])
    ap.add_argument(
        "--extra-speed-dtypes",
        nargs="*",
        default=None,
        help="speed also in these dtypes (default: bfloat16 where the CPU computes in it natively)",
    )
    ap.add_argument("--speed-repeats", type=int, default=5)
    ap.add_argument("--skip-humaneval", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--resume", action="store_true", help="skip models already evaluated")
    ap.add_argument("--compare-only", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "code_eval")
    opts = ap.parse_args()
    if opts.models is None:
        pairs = [("dense", "qwen2.5-coder-0.5b")]
        for label in ("wanda50", "sg24"):
            if (ROOT / "runs" / label / "config.json").is_file():
                pairs.append((label, str(ROOT / "runs" / label)))
            else:
                print(f"note: runs/{label} not found; skipping it", flush=True)
    else:
        pairs = [tuple(m.split("=", 1)) if "=" in m else (Path(m).name, m) for m in opts.models]
    folders = []
    for label, spec in pairs:
        done = opts.out / label / "report.json"
        if opts.compare_only or (opts.resume and done.is_file()):
            if done.is_file():
                folders.append(done.parent)
            continue
        print(f"== {label}: {spec}", flush=True)
        folders.append(evaluate_in_fresh_process(spec, label, opts))
    if folders:
        compare_all(folders, opts.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
