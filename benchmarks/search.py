"""`prunekit search` on qwen2.5-coder-0.5b (issue 28): the searched model at the seed recipe's budget
(318,495,655 non-embedding parameters) and at −20% non-embedding, each within 3 hours of search
(+ export; HumanEval excluded), judged on full HumanEval and paired with the hand recipes; and the
rank correlation of the search's fitness with pass@1 over a spread of its candidates.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/search.py --run seed minus20
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/search.py --run spearman
    .venv/bin/python benchmarks/search.py --list   # every cell and the commands it runs
    .venv/bin/python benchmarks/search.py          # only render what is recorded

Cells (folders runs/s-<cell>):
- seed, minus20: `prunekit search MODEL --budget … --hours 3` then `prunekit eval --humaneval`
  (164 problems, greedy, --dtype auto). Paired (exact McNemar) against the dense model and the
  hand recipes whose runs/ folders still hold humaneval_problems.jsonl (seed recipe 31.7%,
  SAAP fused+skip 7.3%); targets: seed ≥ 45%, minus20 ≥ 35%.
- spearman: each plan in runs/s-seed/candidates/ (a spread of ≥ 8 candidates over the fitness
  range) rebuilt with `prunekit search MODEL --plan …` and judged; Spearman ρ of fitness vs
  pass@1 (target ≥ 0.7).
Estimated time on the two-core benchmark machine: 2 × (3 h search + ~30 min HumanEval), then
~12 × (5 min rebuild + ~30 min HumanEval) for the correlation. Untested on the real model: the
search was only run on the tiny test models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL = "qwen2.5-coder-0.5b"
RECORD = ROOT / "benchmarks" / "results" / f"search_{MODEL}.json"
PK = [str(Path(sys.executable).with_name("prunekit"))]
SEARCH = ("--hours", "3", "--dtype", "auto", "--calib", "answered:python", "--calib-samples", "64")
EVAL = ("--humaneval", "--dtype", "auto")
CELLS = {  # name → (what, search budget)
    "seed": ("at the seed recipe's budget (318,495,655 non-embedding params)", "params=318495655"),
    "minus20": ("at −20% non-embedding parameters", "params=0.8"),
}
# folders of benchmarks/repair.py cells (paired only where they still hold per-problem rows)
REFERENCES = {"dense": "r-dense", "seed recipe": "r-seed", "SAAP fused+skip": "r-saap20"}


def _commands(name: str) -> list[list[str]]:
    folder = RUNS / f"s-{name}"
    if name in CELLS:
        search = ["search", MODEL, "--budget", CELLS[name][1], *SEARCH, "-o", str(folder)]
        return [search, ["eval", str(folder), *EVAL]]
    plans = sorted((RUNS / "s-seed" / "candidates").glob("plan_*.json"))
    out = []
    for plan in plans:
        cand = RUNS / f"s-seed-{plan.stem}"
        out += [["search", MODEL, "--plan", str(plan), "-o", str(cand)], ["eval", str(cand), *EVAL]]
    return out


def _solved(folder: Path) -> dict[str, bool] | None:
    path = folder / "humaneval_problems.jsonl"
    if not path.is_file():
        return None
    return {r["task_id"]: r["passed"] for r in map(json.loads, path.read_text().splitlines())}


def mcnemar(a: dict[str, bool], b: dict[str, bool]) -> dict:
    """Problems gained / lost by `a` against `b` and the exact two-sided McNemar p."""
    from math import comb

    gained = sum(a[k] and not b[k] for k in a if k in b)
    lost = sum(b[k] and not a[k] for k in a if k in b)
    n = gained + lost
    p = min(1.0, 2 * sum(comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n) if n else 1.0
    return {"gained": gained, "lost": lost, "p": p}


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman ρ with average ranks for ties."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def _load() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {"cells": {}}


def _pass1(folder: Path) -> float | None:
    path = folder / "report.json"
    rep = json.loads(path.read_text()) if path.is_file() else {}
    return rep.get("evaluation", {}).get("humaneval", {}).get("pass@1")


def _run(name: str) -> None:
    times = []
    for args in _commands(name):
        t = time.perf_counter()
        subprocess.run([*PK, *args], check=True, cwd=ROOT)
        times.append({"command": " ".join(args), "wall_s": time.perf_counter() - t})
    record = _load()
    if name in CELLS:
        folder = RUNS / f"s-{name}"
        rep = json.loads((folder / "report.json").read_text())
        mine = _solved(folder) or {}
        paired = {
            ref: mcnemar(mine, other)
            for ref, sub in REFERENCES.items()
            if (other := _solved(RUNS / sub)) is not None
        }
        record["cells"][name] = {
            "what": CELLS[name][0],
            "pass@1": _pass1(folder),
            "budget": rep["search"]["budget"],
            "search_elapsed_s": rep["search"]["elapsed_s"],
            "generations": rep["search"]["generations"],
            "fitness": rep["search"]["best"]["fitness"],
            "paired": paired,
            "commands": times,
        }
    else:
        pairs = []
        for plan in sorted((RUNS / "s-seed" / "candidates").glob("plan_*.json")):
            fitness = json.loads(plan.read_text())["fitness"]
            pairs.append((fitness, _pass1(RUNS / f"s-seed-{plan.stem}")))
        pairs = [(f, p) for f, p in pairs if p is not None]
        record["cells"]["spearman"] = {
            "candidates": pairs,
            # lower KL should mean higher pass@1: ρ of (−fitness, pass@1)
            "rho": spearman([-f for f, _ in pairs], [p for _, p in pairs]) if pairs else None,
            "commands": times,
        }
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run", nargs="*", default=[], help="cells to make and judge: seed minus20 spearman"
    )
    p.add_argument("--list", action="store_true", help="show every cell and its commands")
    args = p.parse_args()
    if args.list:
        for name in (*CELLS, "spearman"):
            what = (
                CELLS[name][0] if name in CELLS else "fitness ↔ pass@1 over runs/s-seed/candidates"
            )
            print(f"{name}: {what}")
            for cmd in _commands(name) or [["(after seed: one rebuild + eval per candidate plan)"]]:
                print("    prunekit " + " ".join(cmd))
        return
    for name in args.run:
        if name not in (*CELLS, "spearman"):
            sys.exit(f"unknown cell '{name}'; choose from: {', '.join((*CELLS, 'spearman'))}")
        _run(name)
    print(json.dumps(_load(), indent=2))


if __name__ == "__main__":
    main()
