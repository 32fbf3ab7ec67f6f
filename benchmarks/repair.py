"""Training-free repair and task-format calibration, judged by HumanEval pass@1 (issue 27).

Each cell is a one-shot student of qwen2.5-coder-0.5b made by `prunekit run` (a recipe) or
`prunekit prune`, then evaluated by `prunekit eval --humaneval --speed` (full 164 problems, greedy,
chat mode; bfloat16 where the CPU computes in it, else float32). Every cell is paired problem by
problem (exact two-sided McNemar) with its reference cell (the same cut without repair / with
corpus calibration) and with the dense model evaluated by the same command and dtype.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/repair.py --run dense depth2 depth2-repair
    .venv/bin/python benchmarks/repair.py --list      # every cell, its reference and its command
    .venv/bin/python benchmarks/repair.py             # only render what is recorded

Students live in runs/r-<cell>; every number is read from their report.json and recorded per cell
(with the machine, the CPU flags, wall and CPU seconds of each command) in
benchmarks/results/repair_qwen2.5-coder-0.5b.json, from which the .md table and the .png are made.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from recovery import (  # noqa: E402
    _link_dense,
    _nonzero,
    _params,
    _report,
    _same_dtype,
    _solved,
    paired,
)

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL = "qwen2.5-coder-0.5b"
OUT = ROOT / "benchmarks" / "results" / f"repair_{MODEL}"
RECORD = Path(f"{OUT}.json")
PK = [str(Path(sys.executable).with_name("prunekit"))]

# depth scored by KL on the answer tokens of the model's own sandbox-checked answers (the seed
# recipe's setting); the same data fits the repair maps
_DEPTH = {"criterion": "kl", "source": "answered:python", "samples": 32, "seq_len": 1024}


def _depth(remove: int, **extra) -> dict:
    return {"steps": [{"depth": {"remove": remove, **_DEPTH, **extra}}]}


def _same_layers(cell: str, take: int | None = None, **extra) -> dict:
    """The layers another depth cell's greedy selection removed (its first `take` picks, in removal
    order), given as `layers:`: greedy KL does not depend on the repair that follows it, and its
    first k rounds are exactly the greedy choice of k layers, so re-scoring would only repeat
    its ~20-40 min."""
    return {"layers_from": cell, "take": take, "steps": [{"depth": {**_DEPTH, **extra}}]}


def _width(keep: float, **extra) -> dict:
    return {
        "steps": [{"width": {"ffn_keep": keep, "criterion": "output", "multiple": 64, **extra}}]
    }


def _saap(**extra) -> dict:
    step = {"target": 0.2, "importance": "fused", "ratios": "skip", **extra}
    return {"steps": [{"structured": step}]}


def _prune(method: str, calib: str, *pattern: str) -> list[str]:
    sparsity = ["--pattern", *pattern] if pattern else ["--sparsity", "0.5"]
    return ["prune", MODEL, "--method", method, *sparsity, "--calib", calib]


# name → (what it is, reference cell for the paired test, recipe dict or `prunekit` arguments)
CELLS: dict[str, tuple[str, str | None, dict | list[str]]] = {
    "dense": ("the built-in model unchanged", None, []),
    "depth1": (
        "−1 layer, greedy KL (answered): depth2's first round",
        "dense",
        _same_layers("depth2", take=1),
    ),
    "depth1-repair": (
        "−1 layer as depth1 chose it + linear repair",
        "depth1",
        _same_layers("depth1", repair="linear"),
    ),
    "depth1-layer6": (
        "−1 layer: layer 6, the float32 pick that kept 42.1% (recovery table), not scored here",
        "depth1",
        {"steps": [{"depth": {"layers": [6]}}]},
    ),
    "depth2": ("−2 layers, greedy KL (answered)", "dense", _depth(2)),
    "depth2-repair": (
        "−2 layers as depth2 chose them + linear repair",
        "depth2",
        _same_layers("depth2", repair="linear"),
    ),
    "depth2-run-repair": (
        "−2 layers, best run after repair + linear repair",
        "depth2-repair",
        _depth(2, selection="run", repair="linear"),
    ),
    "depth4": ("−4 layers, greedy KL (answered)", "dense", _depth(4)),
    "depth4-repair": (
        "−4 layers as depth4 chose them + linear repair",
        "depth4",
        _same_layers("depth4", repair="linear"),
    ),
    "depth4-run-repair": (
        "−4 layers, best run after repair + linear repair",
        "depth4-repair",
        _depth(4, selection="run", repair="linear"),
    ),
    "width90": ("FFN −10% non-embedding (keep 0.885)", "dense", _width(0.885)),
    "width90-refit": ("FFN −10% + least-squares refit", "width90", _width(0.885, refit=True)),
    "width80": ("FFN −20% non-embedding (keep 0.77)", "dense", _width(0.77)),
    "width80-refit": ("FFN −20% + least-squares refit", "width80", _width(0.77, refit=True)),
    "saap20": ("SAAP −20% fused + skip", "dense", _saap()),
    "saap20-refit": ("SAAP −20% fused + skip + refit", "saap20", _saap(refit=True)),
    "wanda50-python": ("Wanda 50%, calib python", "dense", _prune("wanda", "python")),
    "wanda50-instruct": (
        "Wanda 50%, calib instruct:python",
        "wanda50-python",
        _prune("wanda", "instruct:python"),
    ),
    "wanda50-answered": (
        "Wanda 50%, calib answered:python",
        "wanda50-python",
        # the 32 instructions the depth cells answered (cached); answers up to 1024 tokens
        [*_prune("wanda", "answered:python"), "--calib-samples", "32", "--seq-len", "1024"],
    ),
    "sg24-python": ("SparseGPT 2:4, calib python", "dense", _prune("sparsegpt", "python", "2:4")),
    "sg24-instruct": (
        "SparseGPT 2:4, calib instruct:python",
        "sg24-python",
        _prune("sparsegpt", "instruct:python", "2:4"),
    ),
    "sg24-answered": (
        "SparseGPT 2:4, calib answered:python",
        "sg24-python",
        [
            *_prune("sparsegpt", "answered:python", "2:4"),
            "--calib-samples",
            "32",
            "--seq-len",
            "1024",
        ],
    ),
    "seed": ("recipes/seed_structural.yaml", "dense", ["recipes/seed_structural.yaml"]),
    "seed-repair": (
        "seed recipe, depth step with linear repair",
        "seed",
        ["recipes/seed_structural.yaml", {"repair": "linear"}],
    ),
}


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _call(args: list[str]) -> dict:
    """Run one prunekit command; its wall and CPU seconds (children's rusage difference)."""
    print("+ prunekit", " ".join(args), flush=True)
    t, c = time.perf_counter(), _cpu_children()
    subprocess.run([*PK, *args], check=True, cwd=ROOT)
    return {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(_cpu_children() - c, 1)}


def _recipe_args(name: str, spec: dict | list[str]) -> list[str]:
    """A recipe file for a dict cell, or the seed recipe with its depth step's options updated."""
    import yaml

    if isinstance(spec, dict):
        recipe = {"model": MODEL, **spec}
        source, take = recipe.pop("layers_from", None), recipe.pop("take", None)
        if source:
            chosen = _report(RUNS / f"r-{source}").get("steps", [{}])[0].get("removed")
            if not chosen:
                sys.exit(f"cell {name} takes the layers cell {source} removed: run {source} first")
            recipe["steps"][0]["depth"]["layers"] = sorted(chosen[:take])
    else:
        recipe = yaml.safe_load((ROOT / spec[0]).read_text())
        recipe.pop("evaluate", None)
        for step in recipe["steps"]:
            if "depth" in step and len(spec) > 1:
                step["depth"].update(spec[1])
    RUNS.mkdir(exist_ok=True)
    path = RUNS / f"r-{name}.recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return ["run", str(path)]


def run_cell(name: str) -> None:
    """Make the student if missing, then evaluate it (HumanEval, speed, ppl) if not yet done."""
    _, _, spec = CELLS[name]
    folder = RUNS / f"r-{name}"
    times = {}
    if name == "dense" and not folder.exists():
        _link_dense(folder)
    elif not folder.exists():
        args = spec if isinstance(spec, list) and spec and spec[0] == "prune" else None
        args = args or _recipe_args(name, spec)
        times["make"] = _call([*args, "-o", str(folder)])
    if "humaneval" not in _report(folder).get("evaluation", {}):
        times["eval"] = _call(
            [
                *("eval", str(folder), "--humaneval", "--speed", "--speed-repeats", "3"),
                *("--dtype", "auto", "--ppl", "python", "--ppl-tokens", "16384"),
            ]
        )
    record(name, times)


def _cpu_flags() -> list[str]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx2", "avx512f")))


def record(name: str, times: dict) -> None:
    """Store one evaluated cell (numbers, per-problem outcomes, machine, times) in the JSON."""
    from prunekit.reports.report import machine

    folder = RUNS / f"r-{name}"
    rep = _report(folder)
    ev = rep.get("evaluation", {})
    he = ev.get("humaneval")
    if not he:
        return
    data = _load()
    old = data["cells"].get(name, {})
    total, non_emb = _params(rep, folder)
    speed = ev.get("speed", {}).get("decode", {}).get("batch_1", {})
    ppl = ev.get("perplexity", {}).get("python")
    data["cells"][name] = {
        "what": CELLS[name][0],
        "command": f"benchmarks/repair.py --run {name}",
        "params_total": total,
        "params_non_embedding": non_emb,
        "nonzero_non_embedding": _nonzero(folder)[1],
        "ppl_python": ppl["ppl"] if ppl else None,
        "humaneval": {k: he.get(k) for k in ("pass@1", "problems", "limited", "mode", "dtype")},
        "decode_tok_s_batch1": speed.get("tokens_per_s"),
        # other work on the machine slows decoding far more than it changes pass@1: kept so the
        # table can mark speeds taken while the load was above the two cores
        "load_1m": round(os.getloadavg()[0], 2) if times.get("eval") else old.get("load_1m"),
        "solved": _solved(folder),
        "times": {**old.get("times", {}), **times},
        "steps": [
            {k: s.get(k) for k in ("step", "options", "removed", "repair", "refit") if k in s}
            for s in rep.get("steps", [])
        ],
        "machine": {**machine(), "cpu_flags": _cpu_flags()},
    }
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _speed(cell: dict) -> str:
    """Decode tok/s; marked when the 1-minute load after the evaluation exceeded the cores."""
    tok_s = cell["decode_tok_s_batch1"]
    if not tok_s:
        return "—"
    load = cell.get("load_1m")
    return f"{tok_s:.1f}" + (f" (load {load:.1f})" if load and load > 2.5 else "")


def _load() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {"cells": {}}


HEAD = [
    "cell",
    "what",
    "params total",
    "params non-embedding",
    "Python ppl",
    "HumanEval pass@1",
    "vs reference: gained / lost (McNemar)",
    "vs dense",
    "decode tok/s (batch 1)",
    "make wall / CPU (s)",
]


def rows() -> list[list[str]]:
    cells = _load()["cells"]
    out = []
    for name, (_, ref, _) in CELLS.items():
        c = cells.get(name)
        if not c:
            continue
        he = c["humaneval"]
        make = c["times"].get("make")
        out.append(
            [
                name,
                c["what"],
                f"{c['params_total']:,}",
                f"{c['params_non_embedding']:,}",
                f"{c['ppl_python']:.3f}" if c["ppl_python"] else "—",
                f"{he['pass@1']:.1%} ({he['problems']}, {he.get('dtype')})",
                f"{ref}: {paired(_same_dtype(cells.get(ref), c), c, own=False)}" if ref else "—",
                "—"
                if name == "dense"
                else paired(_same_dtype(cells.get("dense"), c), c, own=False),
                _speed(c),
                f"{make['wall_s']:.0f} / {make['cpu_s']:.0f}" if make else "—",
            ]
        )
    return out


def render() -> None:
    table = rows()
    cells = _load()["cells"]
    machines = {json.dumps(c["machine"], sort_keys=True) for c in cells.values()}
    lines = [
        f"# Training-free repair and task-format calibration on {MODEL}",
        "",
        "HumanEval pass@1: full 164 problems, greedy, chat mode, generation in the dtype shown. "
        "Paired columns: problems the cell solves that the other does not / the reverse, exact "
        "two-sided McNemar p (pairs only cells of the same dtype). Generated by "
        "`benchmarks/repair.py` from `repair_qwen2.5-coder-0.5b.json` (commands, machine, CPU flags "
        "and per-problem outcomes are there); `make` is the pruning command's wall and CPU time.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    missing = [n for n in CELLS if n not in cells]
    if missing:
        lines += ["", "Not run yet: " + ", ".join(missing) + "."]
    lines += ["", "Machines: " + "; ".join(sorted(machines))]
    Path(f"{OUT}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(cells)


def plot(cells: dict) -> None:
    """pass@1 against non-embedding parameters, an arrow from each reference to its cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, c in cells.items():
        x, y = c["params_non_embedding"] / 1e6, 100 * c["humaneval"]["pass@1"]
        ax.scatter([x], [y], s=18)
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ref = cells.get(CELLS.get(name, ("", None, None))[1] or "")
        if ref and ref is not cells.get("dense"):
            rx, ry = ref["params_non_embedding"] / 1e6, 100 * ref["humaneval"]["pass@1"]
            ax.annotate("", (x, y), (rx, ry), arrowprops={"arrowstyle": "->", "alpha": 0.5})
    ax.set_xlabel("non-embedding parameters (M)")
    ax.set_ylabel("HumanEval pass@1 (%)")
    ax.set_title(f"{MODEL}: repair and calibration (arrows: reference → cell)")
    fig.tight_layout()
    fig.savefig(f"{OUT}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="*", default=[], help="cells to make and evaluate, in order")
    p.add_argument("--list", action="store_true", help="show every cell and its reference")
    args = p.parse_args()
    if args.list:
        for name, (what, ref, spec) in CELLS.items():
            print(f"{name:20s} ref={ref or '-':16s} {what}  {spec}")
        return
    unknown = [n for n in args.run if n not in CELLS]
    if unknown:
        sys.exit(f"unknown cells {unknown}; choose from: {', '.join(CELLS)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in args.run:
        run_cell(name)
        render()
    if not args.run:
        render()


if __name__ == "__main__":
    main()
