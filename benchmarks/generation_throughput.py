"""HumanEval generation throughput: the continuous-batching generator vs the one it replaced.

    flock /tmp/prunekit-bench.lock nice -n 10 .venv/bin/python benchmarks/generation_throughput.py \
        MODEL [MODEL ...] --label dense --label pruned --limit 20 --dtype auto

Only generation is timed (no execution). Each (model, generator) pair runs in this process, one
after the other, on the same prompts; rows are appended to
benchmarks/results/generation_throughput.json and the table is re-rendered from all rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "evaluation"))  # the old generator lives with its test


def generators() -> dict:
    from generation_reference import generate_batched as old

    from prunekit.evaluation.generation import generate_batched as new

    return {"old (re-queue every 128)": old, "new (continuous)": new}


def run_one(spec: str, label: str, opts: argparse.Namespace) -> list[dict]:
    import torch

    from prunekit.evaluation import humaneval as he
    from prunekit.models.loading import load_model

    torch.set_num_threads(opts.threads)
    lm = load_model(spec, opts.dtype)
    mode = he.resolve_mode(opts.mode, lm.tokenizer)
    problems = he.load_problems(opts.limit)
    prompts = [he.build_prompt(p, mode, lm.tokenizer) for p in problems]
    stops = he.stop_sequences(mode)
    kwargs = dict(
        max_new_tokens=opts.max_new_tokens,
        batch_size=opts.batch_size,
        stops=stops,
        add_special_tokens=(mode == "completion"),
        progress=False,
    )
    rows, texts = [], {}
    for name, generate in generators().items():
        if opts.only and opts.only not in name:
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        out, _ = generate(lm.model, lm.tokenizer, prompts, **kwargs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        texts[name] = [he.truncate_at_stops(per[0].text, stops) for per in out]
        tokens = sum(per[0].new_tokens for per in out)
        rows.append(
            {
                "model": label,
                "spec": spec,
                "generator": name,
                "dtype": str(next(lm.model.parameters()).dtype).removeprefix("torch."),
                "mode": mode,
                "problems": len(prompts),
                "batch_size": opts.batch_size,
                "max_new_tokens": opts.max_new_tokens,
                "prompt_tokens": sum(len(lm.tokenizer(p)["input_ids"]) for p in prompts),
                "generated_tokens": tokens,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "tokens_per_s": round(tokens / wall, 2),
                "wall_per_problem_s": round(wall / len(prompts), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if len(texts) == 2:
        a, b = texts.values()
        for row in rows:
            row["same_completions"] = f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"
    return rows


def render(rows: list[dict]) -> str:
    head = (
        "| model | generator | dtype | problems | generated tok | wall s | CPU s | tok/s | "
        "wall/problem s | same completions |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['model']} | {r['generator']} | {r['dtype']} | {r['problems']} | "
        f"{r['generated_tokens']} | {r['wall_s']} | {r['cpu_s']} | {r['tokens_per_s']} | "
        f"{r['wall_per_problem_s']} | {r.get('same_completions', '—')} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--label", action="append", default=None, help="one per model")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument(
        "--dtype", default="auto", help="auto: bfloat16 where the CPU computes in it, else float32"
    )
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="run only the generator whose name has this")
    ap.add_argument("--out", type=Path, default=RESULTS / "generation_throughput.json")
    opts = ap.parse_args()
    labels = opts.label or opts.models
    if len(labels) != len(opts.models):
        ap.error("give one --label per model")
    done = json.loads(opts.out.read_text()) if opts.out.exists() else []
    for spec, label in zip(opts.models, labels):
        done += run_one(spec, label, opts)
        opts.out.write_text(json.dumps(done, indent=1) + "\n")
    print(render(done))


if __name__ == "__main__":
    main()
