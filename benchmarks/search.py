"""`prunekit search` on qwen2.5-coder-0.5b (issue 28): the searched model at the seed recipe's budget
(318,495,655 non-embedding parameters) and at −20% non-embedding, each within `--hours` of search
(+ export; HumanEval excluded; 3 by default, as the issue asks), judged on full HumanEval and paired
with the hand recipes; and the rank correlation of the search's fitness with pass@1 over a spread
of its candidates.

    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/search.py --run seed minus20
    flock /tmp/prunekit-bench.lock .venv/bin/python benchmarks/search.py --run spearman [--at-most N]
    .venv/bin/python benchmarks/search.py --hours 1 --run seed   # a shorter search (recorded)
    .venv/bin/python benchmarks/search.py --list   # every cell and the commands it runs
    .venv/bin/python benchmarks/search.py          # only render what is recorded

Cells (folders runs/s-<cell>):
- seed, minus20: `prunekit search MODEL --budget … --hours H` then `prunekit eval --humaneval`
  (164 problems, greedy, --dtype auto). Paired (exact McNemar) against the per-problem outcomes of
  benchmarks/repair.py's dense, seed recipe and SAAP fused+skip cells (read from its record, so
  they need no runs/ folder); targets: seed ≥ 45%, minus20 ≥ 35%.
- spearman: each plan the seed cell kept (benchmarks/results/search_<model>_seed/candidates/, a
  spread of ≥ 8 candidates over the fitness range) rebuilt with `prunekit search MODEL --plan …`
  and judged; Spearman ρ of fitness vs pass@1 (target ≥ 0.7). Each call judges the plans not
  judged yet (`--at-most N` of them) and saves after each, so the cell grows over sessions; a
  rerun of the seed cell makes new plans and drops the old ones' results.
Every command's wall and CPU seconds and the machine are recorded per cell in
benchmarks/results/search_qwen2.5-coder-0.5b.json, rendered to the .md beside it. A short search
was run by hand once (benchmarks/results/search_minus20_short/, README "Search"); these cells
take 2 × (3 h search + HumanEval), then one rebuild + HumanEval per candidate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from repair import _call, _cpu_flags  # noqa: E402

from prunekit.evaluation.paired import count, mcnemar_exact  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
MODEL = "qwen2.5-coder-0.5b"
OUT = ROOT / "benchmarks" / "results" / f"search_{MODEL}"
RECORD = Path(f"{OUT}.json")
SEARCH = ("--dtype", "auto", "--calib", "answered:python", "--calib-samples", "64")
EVAL = ("--humaneval", "--dtype", "auto")
CELLS = {  # name → (what, search budget, target pass@1)
    "seed": (
        "at the seed recipe's budget (318,495,655 non-embedding params)",
        "params=318495655",
        0.45,
    ),
    "minus20": ("at −20% non-embedding parameters", "params=0.8", 0.35),
}
# benchmarks/repair.py cells whose per-problem outcomes the searched models are paired with
REPAIR_RECORD = ROOT / "benchmarks" / "results" / f"repair_{MODEL}.json"
REFERENCES = {"dense": "dense", "seed recipe": "seed", "SAAP fused+skip": "saap20"}


def _plans() -> list[Path]:
    """The seed cell's candidate plans, from its kept folder (they outlive runs/)."""
    return sorted((Path(f"{OUT}_seed") / "candidates").glob("plan_*.json"))


def _digest(plan: Path) -> str:
    """Names a plan by its content: a rerun of the seed cell makes other plans of the same name."""
    return hashlib.sha256(plan.read_bytes()).hexdigest()[:16]


def _commands(name: str, hours: float) -> list[list[str]]:
    """The prunekit commands of a cell (for spearman, of every kept plan)."""
    if name not in CELLS:
        return _rebuild_commands(_plans())
    folder = RUNS / f"s-{name}"
    search = ["search", MODEL, "--budget", CELLS[name][1], "--hours", f"{hours:g}", *SEARCH]
    return [[*search, "-o", str(folder), "--force"], ["eval", str(folder), *EVAL]]


def _rebuild_commands(plans: list[Path]) -> list[list[str]]:
    """Rebuild each plan with `prunekit search --plan` and judge it."""
    out = []
    for plan in plans:
        cand = RUNS / f"s-seed-{plan.stem}"
        rebuild = ["search", MODEL, "--plan", str(plan.relative_to(ROOT)), "-o", str(cand)]
        out += [[*rebuild, "--force"], ["eval", str(cand), *EVAL]]
    return out


def _solved(folder: Path) -> dict[str, bool]:
    rows = (folder / "humaneval_problems.jsonl").read_text().splitlines()
    return {r["task_id"]: r["passed"] for r in map(json.loads, rows)}


def references() -> dict[str, dict[str, bool]]:
    """The hand recipes' per-problem HumanEval outcomes recorded by benchmarks/repair.py."""
    cells = json.loads(REPAIR_RECORD.read_text())["cells"] if REPAIR_RECORD.is_file() else {}
    return {
        ref: cells[c]["solved"] for ref, c in REFERENCES.items() if "solved" in cells.get(c, {})
    }


def paired(mine: dict[str, bool], refs: dict[str, dict[str, bool]]) -> dict[str, dict]:
    """Gained / lost problems and the exact McNemar p against each reference."""
    out = {}
    for ref, other in refs.items():
        c = count(mine, other)
        p = mcnemar_exact(c["only_a"], c["only_b"])
        out[ref] = {"gained": c["only_a"], "lost": c["only_b"], "p": round(p, 6)}
    return out


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


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


KEEP = ("report.json", "report.md", "plan.json", "pareto.png", "humaneval_problems.jsonl")


def _keep(folder: Path, name: str) -> Path:
    """The searched cell's reports, plan, Pareto plot, candidate plans and per-problem outcomes,
    copied beside the record (runs/ is not kept)."""
    import shutil

    dest = Path(f"{OUT}_{name}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in KEEP:
        if (folder / f).is_file():
            shutil.copy2(folder / f, dest / f)
    if (folder / "candidates").is_dir():
        shutil.copytree(folder / "candidates", dest / "candidates")
    return dest


def _run(name: str, hours: float) -> None:
    times = [{"command": "prunekit " + " ".join(a), **_call(a)} for a in _commands(name, hours)]
    record = _load()
    folder = RUNS / f"s-{name}"
    rep = _report(folder)
    search = rep["search"]
    solved = _solved(folder)
    cell = {
        "what": CELLS[name][0],
        "hours": hours,
        "pass@1": rep["evaluation"]["humaneval"]["pass@1"],
        "target": CELLS[name][2],
        "budget": search["budget"],
        "params_total": rep["params"]["total"],
        "search_elapsed_s": search["elapsed_s"],
        "search_cpu_s": search.get("cpu_s"),
        "generations": search["generations"],
        "stop_reason": search.get("stop_reason"),
        "fitness": search["best"]["fitness"],
        "labels": search["best"]["labels"],
        "paired": paired(solved, references()),
        "solved": solved,
        "kept": str(_keep(folder, name).relative_to(ROOT)),
    }
    cell.update(commands=times, machine=_machine())
    record["cells"][name] = cell
    _save(record)


def _machine() -> dict:
    from prunekit.reports.report import machine

    return {**machine(), "cpu_flags": _cpu_flags()}


def _save(record: dict) -> None:
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def correlation(cands: list[dict], of: int) -> dict:
    """The spearman cell over the judged candidates; lower KL should mean higher pass@1, so ρ is
    taken of (−fitness, pass@1)."""
    rho = spearman([-c["fitness"] for c in cands], [c["pass@1"] for c in cands])
    return {"candidates": cands, "of": of, "rho": rho if len(cands) > 2 else None, "target": 0.7}


def _choice(plan: dict) -> tuple:
    """What makes a plan's weights: its levels and vocabulary move."""
    return plan.get("levels"), plan.get("vocabulary")


def spread_first(todo: dict[str, float], judged: list[float]) -> list[str]:
    """Plan names in the order that widens the judged fitness range fastest: the best first, then
    each time the one farthest from every fitness judged or ordered before it (so a call that
    judges only a few plans still spans the range)."""
    order, seen, left = [], list(judged), dict(todo)
    while left:
        far = (lambda k: min(abs(left[k] - f) for f in seen)) if seen else (lambda k: -left[k])
        pick = max(left, key=far)
        order.append(pick)
        seen.append(left.pop(pick))
    return order


def _run_spearman(at_most: int | None) -> None:
    """Rebuild and judge the seed cell's candidate plans not judged yet (at most `at_most` this
    call), saving after each one: the cell grows over calls and survives an interruption."""
    plans = _plans()
    if not plans:
        sys.exit(f"no candidate plans in {OUT}_seed/candidates: run --run seed first")
    record = _load()
    digests = {_digest(p): p for p in plans}
    data = {d: json.loads(p.read_text()) for d, p in digests.items()}
    kept = Path(f"{OUT}_seed") / "plan.json"
    seed = record["cells"].get("seed") if kept.is_file() else None
    # a rebuilt plan has the same weights: the seed cell's chosen plan keeps that cell's outcomes
    chosen = _choice(json.loads(kept.read_text())) if seed else None
    # candidates of an earlier seed cell are dropped: their plans are not the kept ones now
    done = [c for c in record["cells"].get("spearman", {}).get("candidates", [])
            if c.get("digest") in digests]  # fmt: skip
    todo = {d: v["fitness"] for d, v in data.items() if d not in {c["digest"] for c in done}}
    for d in spread_first(todo, [c["fitness"] for c in done])[:at_most]:
        plan = digests[d]
        row = {"plan": plan.name, "digest": d, "fitness": data[d]["fitness"]}
        if seed and _choice(data[d]) == chosen:
            row |= {"pass@1": seed["pass@1"], "solved": seed["solved"], "commands": []}
            row |= {"machine": seed["machine"], "judged_as": "the seed cell's chosen model"}
        else:
            cmds = _rebuild_commands([plan])
            times = [{"command": "prunekit " + " ".join(a), **_call(a)} for a in cmds]
            folder = RUNS / f"s-seed-{plan.stem}"
            rep = _report(folder)["evaluation"]["humaneval"]
            row |= {"pass@1": rep["pass@1"], "solved": _solved(folder), "commands": times}
            row |= {"machine": _machine()}
        done.append(row)
        done.sort(key=lambda c: c["plan"])
        record["cells"]["spearman"] = correlation(done, len(plans))
        _save(record)


def render(record: dict, refs: dict[str, dict[str, bool]] | None = None) -> str:
    """The record as markdown: one row per searched cell, the references' own pass@1 (`refs`,
    per-problem outcomes), then the rank correlation."""
    lines = [
        f"# `prunekit search` on {MODEL} (benchmarks/search.py)",
        "",
        "| cell | hours | budget (non-embedding) | params total | generations | fitness (KL) "
        "| HumanEval pass@1 | target | vs dense / seed recipe / SAAP (gained/lost, p) "
        "| wall / CPU s | machine |",
        "|" + "---|" * 11,
    ]
    for name in CELLS:
        c = record["cells"].get(name)
        if not c:
            continue
        vs = "; ".join(
            f"{r}: +{v['gained']}/−{v['lost']} " + (f"p={v['p']:.2g}" if v["p"] else "p<1e-6")
            for r, v in c["paired"].items()
        )
        wall = sum(t["wall_s"] for t in c["commands"])
        cpu = sum(t["cpu_s"] for t in c["commands"])
        lines.append(
            f"| {name} | {c['hours']:g} | {c['budget']['chosen']:,} ≤ {c['budget']['limit']:,} "
            f"| {c['params_total']:,} | {c['generations']} | {c['fitness']:.4f} "
            f"| {c['pass@1']:.1%} | ≥ {c['target']:.0%} | {vs} | {wall:,.0f} / {cpu:,.0f} "
            f"| {c['machine']['cpu']} ({', '.join(c['machine']['cpu_flags'])}) |"
        )
    if refs:
        own = ", ".join(f"{r} {sum(v.values()) / len(v):.1%}" for r, v in refs.items())
        lines += ["", f"References (benchmarks/repair.py's record, full HumanEval): {own}."]
    lines += [f"\n{name}: {c['note']}." for name, c in record["cells"].items() if c.get("note")]
    kept = [c["kept"] for c in record["cells"].values() if c.get("kept")]
    if kept:
        lines += [
            "",
            "Each cell's report, plan, Pareto plot and candidate plans: "
            + ", ".join(f"`{k}/`" for k in kept),
        ]
    sp = record["cells"].get("spearman")
    if sp:
        rho = "n/a (needs 3 candidates)" if sp["rho"] is None else f"{sp['rho']:.2f}"
        lines += [
            "",
            f"Fitness ↔ pass@1 Spearman ρ over {len(sp['candidates'])} of {sp['of']} candidate "
            f"plans of the seed cell: {rho} (target ≥ {sp['target']})",
            "",
            "| plan | fitness (KL) | HumanEval pass@1 | wall / CPU s |",
            "|---|---|---|---|",
        ]
        for c in sp["candidates"]:
            wall = sum(t["wall_s"] for t in c["commands"])
            cpu = sum(t["cpu_s"] for t in c["commands"])
            cost = f"{wall:,.0f} / {cpu:,.0f}" if c["commands"] else "(the seed cell's own model)"
            lines.append(f"| {c['plan']} | {c['fitness']:.4f} | {c['pass@1']:.1%} | {cost} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run", nargs="*", default=[], help="cells to make and judge: seed minus20 spearman"
    )
    p.add_argument("--hours", type=float, default=3.0, help="search hours of seed / minus20")
    p.add_argument(
        "--at-most", type=int, default=None, help="spearman: judge at most N more candidates"
    )
    p.add_argument("--list", action="store_true", help="show every cell and its commands")
    args = p.parse_args()
    names = (*CELLS, "spearman")
    if args.list:
        for name in names:
            what = CELLS[name][0] if name in CELLS else "fitness ↔ pass@1 over the seed's plans"
            print(f"{name}: {what}")
            cmds = _commands(name, args.hours) or [["(after seed: one rebuild + eval per plan)"]]
            for cmd in cmds:
                print("    prunekit " + " ".join(cmd))
        return
    if args.at_most is not None and args.at_most < 1:
        sys.exit(f"--at-most {args.at_most}: give a number of plans of 1 or more")
    bad = [n for n in args.run if n not in names]
    if bad:
        sys.exit(f"unknown cell {bad}; choose from: {', '.join(names)}")
    for name in args.run:
        if name == "spearman":
            _run_spearman(args.at_most)
        else:
            _run(name, args.hours)
    record = _load()
    if record["cells"]:
        text = render(record, references())
        Path(f"{OUT}.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
