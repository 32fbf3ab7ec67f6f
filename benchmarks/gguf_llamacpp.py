"""GGUF in llama.cpp (issue 29): qwen2.5-coder-0.5b dense vs vocabulary-wide vs the seed recipe
(vs any run folder given with --best), each exported at f16 / q8_0 / q4_0 and run by llama.cpp
with 2 threads: file size, peak RSS, prefill and decode tokens/s, full HumanEval pass@1 (greedy,
chat mode, the same prompts, stops and sandbox as the transformers path). The same models in
transformers (dtype auto) for comparison, and the agreement check: greedy output of the f16 GGUF
in llama.cpp against transformers (float32) on the first 20 HumanEval prompts.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/gguf_llamacpp.py --run dense:f16 vocab-wide:q8_0
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/gguf_llamacpp.py --agree dense vocab-wide
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/gguf_llamacpp.py --speed all
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/gguf_llamacpp.py --parallel 8 --check-parallel dense
    .venv/bin/python benchmarks/gguf_llamacpp.py --list      # every cell and its commands
    .venv/bin/python benchmarks/gguf_llamacpp.py             # only render what is recorded

Cells are MODEL:QUANT (llama.cpp) or MODEL:transformers. Students are made once by `prunekit run`
(runs/g-<model>; an existing runs/q-<model> or runs/r-<model> from the recovery / repair
benchmarks is reused); each cell's GGUF, report.json and humaneval_problems.jsonl live in
runs/g-<model>-<quant>/. Every number is read from those reports and recorded in
benchmarks/results/gguf_qwen2.5-coder-0.5b.json, from which the .md table is rendered.
`--speed` measures only size, memory and speed (minutes a cell, not the 30-40 of HumanEval in
llama.cpp), so the whole grid is timed on one machine: speed ratios are only taken between cells
timed on the same machine. `--parallel N` generates N sequences per llama.cpp batch in the
HumanEval of --run (default 1, as one llama.cpp request sees); `--check-parallel` measures what
that changes: greedy texts and wall time on the first 20 HumanEval prompts, 1 vs N.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from repair import _call, _cpu_flags  # noqa: E402

from recovery import _link_dense, _report, _solved, paired  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL = "qwen2.5-coder-0.5b"
OUT = ROOT / "benchmarks" / "results" / f"gguf_{MODEL}"
RECORD = Path(f"{OUT}.json")
THREADS = "2"
QUANTS = ("f16", "q8_0", "q4_0")
AGREE_PROMPTS = 20

# model → (what it is, recipe that makes it; None: the built-in model)
MODELS: dict[str, tuple[str, str | None]] = {
    "dense": ("the built-in model unchanged", None),
    "vocab-wide": ("vocabulary over python,text,javascript,cpp", "recipes/vocabulary_wide.yaml"),
    "seed": (
        "recipes/seed_structural.yaml (vocabulary, −1 layer, FFN 0.97)",
        "recipes/seed_structural.yaml",
    ),
}
BEST: dict[str, Path] = {}  # --best NAME=FOLDER: the best structured cell of another benchmark
PARALLEL = [1]  # --parallel: llama.cpp sequences per batch in --run's HumanEval


def cells() -> list[str]:
    return [f"{m}:{q}" for m in [*MODELS, *BEST] for q in (*QUANTS, "transformers")]


def existing(model: str) -> Path | None:
    """The model's folder if made already (here, or by the recovery / repair benchmarks)."""
    if model in BEST:
        return BEST[model]
    for prefix in ("g", "q", "r"):
        folder = RUNS / f"{prefix}-{model}"
        if (folder / "config.json").is_file():
            return folder
    return None


def student(model: str) -> Path:
    """The model's folder: made once by its recipe (without the recipe's own evaluation)."""
    import yaml

    if (found := existing(model)) is not None:
        return found
    folder = RUNS / f"g-{model}"
    recipe_file = MODELS[model][1]
    if recipe_file is None:
        _link_dense(folder)
        return folder
    recipe = yaml.safe_load((ROOT / recipe_file).read_text())
    recipe.pop("evaluate", None)
    path = RUNS / f"g-{model}.recipe.yaml"
    RUNS.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    _call(["run", str(path), "-o", str(folder)])
    return folder


def cell_dir(cell: str) -> Path:
    model, quant = cell.split(":")
    return RUNS / f"g-{model}-{quant}"


def commands(cell: str, folder: Path, humaneval: bool = True) -> list[list[str]]:
    """The prunekit commands one cell runs (export, then eval), for --list, --run and --speed
    (humaneval=False: size, memory and speed only, reported to speed.json)."""
    model, quant = cell.split(":")
    out = cell_dir(cell)
    report = ["--report", str(out / ("report.json" if humaneval else "speed.json"))]
    evaluate = [*(["--humaneval"] if humaneval else []), "--speed", "--speed-repeats", "3"]
    evaluate.append("--no-progress")
    if quant == "transformers":
        jsonl = ["--humaneval-jsonl", str(out / "humaneval_problems.jsonl")] if humaneval else []
        return [["eval", str(folder), "--dtype", "auto", *evaluate, *report, *jsonl]]
    gguf = out / "model.gguf"
    return [
        [
            "export",
            str(folder),
            "--format",
            "gguf",
            "--quant",
            quant,
            "-o",
            str(gguf),
            "--no-progress",
        ],
        [
            *("eval", str(gguf), "--backend", "llama.cpp", "--threads", THREADS),
            *(["--parallel", str(PARALLEL[0])] if PARALLEL[0] > 1 else []),
            *evaluate,
            *report,
        ],
    ]


def run_cell(cell: str) -> None:
    out = cell_dir(cell)
    export, *rest = commands(cell, student(cell.split(":")[0]))
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    if rest and not (out / "model.gguf").is_file():
        times["export"] = _call(export)
    if "humaneval" not in _report(out).get("evaluation", {}):
        times["eval"] = _call(rest[-1] if rest else export)
    record(cell, times)


def run_speed(cell: str) -> None:
    """Size, memory and speed of one cell on this machine (no HumanEval), into the JSON."""
    out = cell_dir(cell)
    export, *rest = commands(cell, student(cell.split(":")[0]), humaneval=False)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    if rest and not (out / "model.gguf").is_file():
        times["export"] = _call(export)
    times["speed"] = _call(rest[-1] if rest else export)
    sp = json.loads((out / "speed.json").read_text()).get("evaluation", {}).get("speed", {})
    data = _load()
    data.setdefault("speed", {})[cell] = {
        **_size_speed(sp, out),
        "times": times,
        "machine": _here(),
    }
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _here() -> dict:
    from prunekit.reports.report import machine

    return {**machine(), "cpu_flags": _cpu_flags()}


def _size_speed(sp: dict, out: Path) -> dict:
    """File size, memory and speed from an eval report's speed section."""
    gguf = out / "model.gguf"
    return {
        "dtype": sp.get("dtype"),
        "threads": sp.get("threads"),
        "file_mib": round(gguf.stat().st_size / 2**20, 1) if gguf.is_file() else None,
        "weights_mib": round((sp.get("disk", {}).get("weights_bytes") or 0) / 2**20, 1),
        "peak_rss_mib": sp.get("memory", {}).get("peak_rss_mb"),
        "rss_before_load_mib": sp.get("memory", {}).get("rss_before_load_mb"),
        "prefill_tok_s": sp.get("prefill", {}).get("tokens_per_s"),
        "decode_tok_s": sp.get("decode", {}).get("batch_1", {}).get("tokens_per_s"),
        "params_total": sp.get("params", {}).get("total"),
    }


def record(cell: str, times: dict) -> None:
    """One evaluated cell's numbers (and per-problem outcomes, machine, times) into the JSON."""
    out = cell_dir(cell)
    ev = _report(out).get("evaluation", {})
    he, sp = ev.get("humaneval"), ev.get("speed", {})
    if not he:
        return
    data = _load()
    data["cells"][cell] = {
        "humaneval": {k: he.get(k) for k in ("pass@1", "problems", "limited", "mode", "dtype")},
        "backend": he.get("backend", "transformers"),
        "runtime": he.get("runtime"),
        **_size_speed(sp, out),
        "generation_tok_s": he.get("tokens_per_s"),
        "batching": he.get("batching"),
        "solved": _solved(out),
        "times": {**data["cells"].get(cell, {}).get("times", {}), **times},
        "machine": _here(),
    }
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def agree(model: str) -> None:
    """Greedy output of the model's f16 GGUF in llama.cpp against transformers (float32) on the
    first AGREE_PROMPTS HumanEval prompts: identical prompt tokens, identical completions."""
    from prunekit.evaluation.generation import generate_batched
    from prunekit.evaluation.llamacpp_eval import LlamaCppBackend
    from prunekit.models.loading import load_model

    folder, gguf = student(model), _f16(model)
    problems, prompts, options = _first_prompts(folder)
    lm = load_model(folder, "float32")
    reference, _ = generate_batched(lm.model, lm.tokenizer, prompts, batch_size=1, **options)
    backend = LlamaCppBackend(gguf, threads=int(THREADS))
    ours, _ = backend.generate(None, prompts, **options)
    rows = []
    for p, prompt, a, b in zip(problems, prompts, reference, ours):
        a, b = a[0].text, b[0].text
        prompt_ids = lm.tokenizer(prompt, add_special_tokens=options["add_special_tokens"])
        prompt_ids = prompt_ids["input_ids"]
        same_prompt = prompt_ids == backend.lm.tokenize(
            prompt, add_special=options["add_special_tokens"]
        )
        prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        rows.append(
            {
                "task_id": p.task_id,
                "prompt_tokens_identical": same_prompt,
                "identical": a == b,
                "common_prefix_chars": prefix,
                "chars": [len(a), len(b)],
                **({} if a == b else _divergence(lm, backend, prompt_ids, a, b)),
            }
        )
    data = _load()
    data.setdefault("agreement", {})[model] = {
        "prompts": len(rows),
        "identical": sum(r["identical"] for r in rows),
        "prompt_tokens_identical": sum(r["prompt_tokens_identical"] for r in rows),
        "gguf": "f16",
        "transformers_dtype": "float32",
        "rows": rows,
    }
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _divergence(lm, backend, prompt_ids: list[int], a: str, b: str) -> dict:
    """Where two greedy texts (transformers `a`, llama.cpp `b`) first differ, in tokens of the
    re-tokenized texts, and each engine's logit margin there between the two picks: a margin
    near zero in both says rounding decided a near-tie, not a wrong weight or token."""
    import torch

    tok = lm.tokenizer
    ta, tb = (tok(t, add_special_tokens=False)["input_ids"] for t in (a, b))
    k = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), None)
    if k is None:  # one text is the other's prefix: a stop rule or the budget ended it
        return {}
    ids, (x, y) = prompt_ids + ta[:k], (ta[k], tb[k])
    with torch.no_grad():
        theirs = lm.model(torch.tensor([ids])).logits[0, -1].float()
    ours = backend.lm.logits(ids)[-1]
    return {
        "first_differing_token": k,
        "picks": [tok.decode([x]), tok.decode([y])],
        "logit_margin_transformers": round(float(theirs[x] - theirs[y]), 4),
        "logit_margin_llamacpp": round(float(ours[x] - ours[y]), 4),
    }


def _f16(model: str) -> Path:
    """The model's f16 GGUF, exported if missing."""
    gguf = cell_dir(f"{model}:f16") / "model.gguf"
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        _call(commands(f"{model}:f16", student(model))[0])
    return gguf


def _first_prompts(folder: Path) -> tuple[list, list[str], dict]:
    """The first AGREE_PROMPTS HumanEval problems, their prompts and generation options, as
    `prunekit eval --humaneval` builds them for the model in `folder`."""
    from transformers import AutoTokenizer

    from prunekit.evaluation.benchmarks import get_benchmark
    from prunekit.evaluation.runner import resolve_mode

    tok = AutoTokenizer.from_pretrained(folder)
    bench = get_benchmark("humaneval")
    problems = bench.load(AGREE_PROMPTS)
    mode = resolve_mode("auto", tok)
    prompts = [bench.prompt(p, mode, tok) for p in problems]
    options = dict(
        max_new_tokens=512, stops=bench.stops(mode), add_special_tokens=mode == "completion"
    )
    return problems, prompts, options


def check_parallel(model: str, n: int) -> None:
    """Greedy completions of the model's f16 GGUF on the first AGREE_PROMPTS HumanEval prompts,
    one sequence at a time and `n` per llama.cpp batch: identical texts, wall and CPU seconds."""
    import time

    from prunekit.evaluation.llamacpp_eval import LlamaCppBackend

    gguf = _f16(model)
    problems, prompts, options = _first_prompts(student(model))
    texts, times = {}, {}
    for k in (1, n):
        backend = LlamaCppBackend(gguf, threads=int(THREADS), parallel=k)
        t, c = time.perf_counter(), time.process_time()
        got, _ = backend.generate(None, prompts, progress=False, **options)
        times[k] = {
            "wall_s": round(time.perf_counter() - t, 1),
            "cpu_s": round(time.process_time() - c, 1),
        }
        texts[k] = [g[0].text for g in got]
        backend.lm.close()
    data = _load()
    data.setdefault("parallel", {})[f"{model}:{n}"] = {
        "prompts": len(prompts),
        "identical": sum(a == b for a, b in zip(texts[1], texts[n])),
        "differ": [p.task_id for p, a, b in zip(problems, texts[1], texts[n]) if a != b],
        "gguf": "f16",
        "times": {f"parallel_{k}": v for k, v in times.items()},
        "machine": _here(),
    }
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _load() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {"cells": {}}


HEAD = [
    "model",
    "engine",
    "file (MiB)",
    "peak RSS (MiB)",
    "prefill tok/s",
    "decode tok/s",
    "HumanEval pass@1",
    "vs dense f16 (paired)",
    "pass@1 / dense f16",
    "decode / dense f16",
]


def _fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, int | float) else "—"


def rows(data: dict) -> list[list[str]]:
    recorded = data["cells"]
    base = recorded.get("dense:f16")
    out = []
    for cell in [c for c in cells() if c in recorded] + [c for c in recorded if c not in cells()]:
        c = recorded[cell]
        model, engine = cell.split(":")
        p1 = c["humaneval"]["pass@1"]
        ratio = p1 / base["humaneval"]["pass@1"] if base and base["humaneval"]["pass@1"] else None
        out.append(
            [
                model,
                _engine(engine, c["humaneval"]["dtype"])
                + (
                    f" ({c['batching'].split(', ')[1]})"
                    if "per batch" in str(c.get("batching"))
                    else ""
                ),
                _fmt(c["file_mib"], ".1f"),
                _fmt(c["peak_rss_mib"], ".0f"),
                _fmt(c["prefill_tok_s"], ".1f"),
                _fmt(c["decode_tok_s"], ".1f"),
                f"{p1:.1%} ({c['humaneval']['problems']})",
                "—" if cell == "dense:f16" else paired(base, c, own=False),
                _fmt(ratio, ".3f"),
                _fmt(_decode_ratio(c, base), ".2f"),
            ]
        )
    return out


def _engine(engine: str, dtype: str | None = None) -> str:
    return (
        f"llama.cpp {engine}" if engine != "transformers" else f"transformers ({dtype or 'auto'})"
    )


def _decode_ratio(c: dict, base: dict | None) -> float | None:
    """Decode tok/s over dense f16's, only when both were timed on the same machine."""
    if not base or not c.get("decode_tok_s") or c.get("machine") != base.get("machine"):
        return None
    return c["decode_tok_s"] / base["decode_tok_s"]


SPEED_HEAD = ["model", "engine", "file (MiB)", "peak RSS (MiB)", "prefill tok/s", "decode tok/s"]


def speed_lines(data: dict) -> list[str]:
    """The --speed grid, one table per machine, decode ratios against that machine's dense f16."""
    timed = data.get("speed", {})
    lines = []
    for mach in sorted({json.dumps(c["machine"], sort_keys=True) for c in timed.values()}):
        here = {k: c for k, c in timed.items() if json.dumps(c["machine"], sort_keys=True) == mach}
        base = here.get("dense:f16")
        head = [*SPEED_HEAD, "decode / dense f16", "file / dense f16"]
        lines += [
            f"Size and speed on one machine (`--speed`; {json.loads(mach)['cpu']}, CPU flags "
            f"{' '.join(json.loads(mach).get('cpu_flags', [])) or 'none listed'}):",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for cell in [c for c in cells() if c in here] + [c for c in here if c not in cells()]:
            c, (model, engine) = here[cell], cell.split(":")
            size = c["file_mib"] or c["weights_mib"]
            base_size = base and (base["file_mib"] or base["weights_mib"])
            row = [
                model,
                _engine(engine, c.get("dtype")),
                _fmt(size, ".1f"),
                _fmt(c["peak_rss_mib"], ".0f"),
                _fmt(c["prefill_tok_s"], ".1f"),
                _fmt(c["decode_tok_s"], ".1f"),
                _fmt(_decode_ratio(c, base), ".2f"),
                _fmt(size / base_size if size and base_size else None, ".3f"),
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


STEP_HEAD = ["model", "step", "pass@1 before → after", "paired (gained / lost)"]


def steps(data: dict) -> list[str]:
    """What each step costs on its own, paired on the same problems: the vocabulary (or recipe)
    in llama.cpp f16, each quantization against the model's own f16, llama.cpp f16 against the
    same folder in transformers."""
    recorded, out = data["cells"], []
    for model in dict.fromkeys(c.split(":")[0] for c in [*cells(), *recorded]):
        pairs = [] if model == "dense" else [("dense:f16", f"{model}:f16", "vs dense, both f16")]
        pairs += [(f"{model}:f16", f"{model}:{q}", f"{q} vs f16") for q in QUANTS[1:]]
        pairs.append((f"{model}:transformers", f"{model}:f16", "llama.cpp f16 vs transformers"))
        for ref, cell, what in pairs:
            a, b = recorded.get(ref), recorded.get(cell)
            if a and b:
                before, after = a["humaneval"]["pass@1"], b["humaneval"]["pass@1"]
                out.append([model, what, f"{before:.1%} → {after:.1%}", paired(a, b, own=False)])
    if not out:
        return []
    return [
        "What each step costs on its own (paired on the same problems, exact McNemar p):",
        "",
        "| " + " | ".join(STEP_HEAD) + " |",
        "|" + "---|" * len(STEP_HEAD),
        *["| " + " | ".join(r) + " |" for r in out],
        "",
    ]


def targets(data: dict) -> list[str]:
    """The issue's targets, checked on what is recorded."""
    cells_, lines = data["cells"], []
    base, vq = cells_.get("dense:f16"), cells_.get("vocab-wide:q8_0")
    if base and vq:
        keep = vq["humaneval"]["pass@1"] / base["humaneval"]["pass@1"]
        speed = _decode_ratio(vq, base)
        lines.append(
            f"- vocab-wide q8_0 keeps {keep:.1%} of dense f16 pass@1 (target ≥ 97%) and decodes "
            + (
                f"{speed:.2f}× its tokens/s (target ≥ 1.15×)"
                if speed
                else "at a speed timed on another machine than dense f16's (see the --speed table)"
            )
        )
    for key, c in data.get("parallel", {}).items():
        model, n = key.split(":")
        one, many = c["times"]["parallel_1"]["wall_s"], c["times"][f"parallel_{n}"]["wall_s"]
        lines.append(
            f"- {model} f16 in llama.cpp, {n} sequences per batch vs one at a time: identical "
            f"greedy text on {c['identical']}/{c['prompts']} of the first HumanEval prompts; "
            f"wall {many:.0f} s vs {one:.0f} s ({one / many:.2f}× faster; {c['machine']['cpu']})"
        )
    for model, a in data.get("agreement", {}).items():
        lines.append(
            f"- {model}: f16 GGUF in llama.cpp matches transformers' greedy output (float32) on "
            f"{a['identical']}/{a['prompts']} of the first HumanEval prompts; prompt tokens "
            f"identical on {a['prompt_tokens_identical']}/{a['prompts']}"
        )
        for r in a["rows"]:
            if "picks" in r:
                lines.append(
                    f"  - {r['task_id']} differs at token {r['first_differing_token']}: "
                    f"transformers {r['picks'][0]!r}, llama.cpp {r['picks'][1]!r}; logit margin "
                    f"(transformers' pick − llama.cpp's) {r['logit_margin_transformers']:+.3f} in "
                    f"transformers, {r['logit_margin_llamacpp']:+.3f} in llama.cpp"
                )
    return lines


def render() -> None:
    data = _load()
    timed = [*data["cells"].values(), *data.get("speed", {}).values()]
    machines = {json.dumps(c["machine"], sort_keys=True) for c in timed}
    runtimes = sorted({c["runtime"] for c in data["cells"].values() if c.get("runtime")})
    lines = [
        f"# {MODEL} as GGUF in llama.cpp",
        "",
        f"llama.cpp rows: `prunekit export --format gguf --quant Q`, then `prunekit eval FILE "
        f"--backend llama.cpp --threads {THREADS} --humaneval --speed` (full 164 problems, greedy, "
        "chat mode, one sequence at a time unless the engine says how many per batch; speed: medians of 3, prefill 256 tokens, decode 32 "
        "tokens after 64, batch 1). Transformers rows: the same folder in `prunekit eval --dtype "
        "auto` (all cores). Peak RSS is the eval process's (Python and torch included). Paired: "
        "problems gained / lost against dense f16, exact two-sided McNemar p. Decode ratios only "
        "between cells timed on the same machine (— otherwise). Generated by "
        "`benchmarks/gguf_llamacpp.py` from `gguf_qwen2.5-coder-0.5b.json`.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
        *["| " + " | ".join(r) + " |" for r in rows(data)],
        "",
        *targets(data),
        "",
        *steps(data),
        *speed_lines(data),
        f"Runtime: {', '.join(runtimes) or '—'}. Machines: " + "; ".join(sorted(machines)),
    ]
    missing = [c for c in cells() if c not in data["cells"]]
    if missing:
        lines += ["", "HumanEval not run yet: " + ", ".join(missing) + "."]
    Path(f"{OUT}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="*", default=[], help="cells MODEL:QUANT or MODEL:transformers")
    p.add_argument("--agree", nargs="*", default=[], help="models for the 20-prompt greedy check")
    p.add_argument(
        "--speed",
        nargs="*",
        default=[],
        help="cells (or 'all') to time on this machine, no HumanEval",
    )
    p.add_argument(
        "--best",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="add a run folder as another model (e.g. the best structured cell)",
    )
    p.add_argument("--list", action="store_true", help="show every cell and its commands")
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="llama.cpp sequences per batch in --run's HumanEval (default 1) and --check-parallel",
    )
    p.add_argument(
        "--check-parallel",
        nargs="*",
        default=[],
        metavar="MODEL",
        help="greedy text and time on the first 20 prompts, 1 vs --parallel sequences per batch",
    )
    args = p.parse_args()
    if args.parallel < 1 or (args.check_parallel and args.parallel < 2):
        sys.exit(f"--parallel {args.parallel}: give 1 or more (2 or more for --check-parallel)")
    PARALLEL[0] = args.parallel
    for item in args.best:
        name, _, folder = item.partition("=")
        if not folder or not (ROOT / folder / "config.json").is_file():
            sys.exit(f"--best {item}: give NAME=FOLDER with a model folder")
        BEST[name] = ROOT / folder
    if args.list:
        for cell in cells():
            model = cell.split(":")[0]
            folder = existing(model) or RUNS / f"g-{model}"
            print(f"{cell:22s} {(MODELS.get(model) or ('--best', ''))[0]}")
            for cmd in commands(cell, folder):
                print("    prunekit " + " ".join(cmd))
        return
    if args.speed == ["all"]:
        args.speed = cells()
    unknown = [c for c in [*args.run, *args.speed] if c not in cells()] + [
        m for m in [*args.agree, *args.check_parallel] if m not in MODELS and m not in BEST
    ]
    if unknown:
        sys.exit(f"unknown cells/models {unknown}; cells: {', '.join(cells())}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for cell in args.run:
        run_cell(cell)
        render()
    for model in args.agree:
        agree(model)
        render()
    for cell in args.speed:
        run_speed(cell)
        render()
    for model in args.check_parallel:
        check_parallel(model, args.parallel)
        render()
    if not (args.run or args.agree or args.speed or args.check_parallel):
        render()


if __name__ == "__main__":
    main()
