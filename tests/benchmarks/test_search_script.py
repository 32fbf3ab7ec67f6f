"""benchmarks/search.py, its pure parts: Spearman ρ against the textbook formula, pairing with the
repair record's per-problem outcomes, and the table it renders from a hand-made record."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from script_helpers import load_script

sb = load_script("search")


def test_spearman_matches_the_formula_without_ties():
    xs, ys = [0.3, 0.1, 0.9, 0.5, 0.7], [2.0, 1.0, 3.0, 5.0, 4.0]
    rank = {v: i for i, v in enumerate(sorted(xs))}, {v: i for i, v in enumerate(sorted(ys))}
    d2 = sum((rank[0][x] - rank[1][y]) ** 2 for x, y in zip(xs, ys))
    n = len(xs)
    assert sb.spearman(xs, ys) == pytest.approx(1 - 6 * d2 / (n * (n * n - 1)))


def test_spearman_averages_tied_ranks():
    # ties: x ranks (0.5, 0.5, 2, 3); a monotone y still correlates below 1
    rho = sb.spearman([1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert 0.9 < rho < 1.0
    assert sb.spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_paired_counts_against_every_reference_by_brute_force():
    ids = [f"HumanEval/{i}" for i in range(12)]
    mine = {t: i % 2 == 0 for i, t in enumerate(ids)}
    refs = {"dense": {t: i < 8 for i, t in enumerate(ids)}, "none": dict.fromkeys(ids, False)}
    out = sb.paired(mine, refs)
    for name, other in refs.items():
        gained = sum(mine[t] and not other[t] for t in ids)
        lost = sum(other[t] and not mine[t] for t in ids)
        assert (out[name]["gained"], out[name]["lost"]) == (gained, lost)
    # all 6 discordant pairs one way: two-sided exact p = 2 / 2**6
    assert out["none"]["p"] == pytest.approx(2 / 2**6, abs=1e-6)


def test_references_come_from_the_repair_record(tmp_path, monkeypatch):
    solved = {"HumanEval/0": True, "HumanEval/1": False}
    record = {"cells": {"dense": {"solved": solved}, "seed": {"pass@1": 0.3}}}
    path = tmp_path / "repair.json"
    path.write_text(json.dumps(record))
    monkeypatch.setattr(sb, "REPAIR_RECORD", path)
    assert sb.references() == {"dense": solved}  # seed has no per-problem rows: left out


def test_render_lists_each_cell_and_the_correlation():
    machine = {"cpu": "Test CPU", "cpu_flags": ["avx2"]}
    cell = {
        "hours": 1.0,
        "budget": {"chosen": 318_000_000, "limit": 318_495_655},
        "params_total": 500_000_000,
        "generations": 12,
        "fitness": 0.05,
        "pass@1": 0.4024,
        "target": 0.45,
        "paired": {"dense": {"gained": 3, "lost": 30, "p": 1e-6}},
        "commands": [{"wall_s": 3600.0, "cpu_s": 7000.0}, {"wall_s": 300.0, "cpu_s": 590.0}],
        "machine": machine,
        "note": "made before a fix",
    }
    one = {
        "plan": "plan_03.json",
        "fitness": 0.0412,
        "pass@1": 0.3354,
        "commands": cell["commands"],
    }
    sp = {"candidates": [one] * 8, "of": 12, "rho": 0.52, "target": 0.7}
    refs = {"dense": {"HumanEval/0": True, "HumanEval/1": False}}
    text = sb.render({"cells": {"seed": cell, "spearman": sp}}, refs)
    assert "References (benchmarks/repair.py's record, full HumanEval): dense 50.0%." in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| seed |"))
    assert "40.2%" in row and "≥ 45%" in row and "+3/−30" in row and "3,900 / 7,590" in row
    assert "Test CPU (avx2)" in row
    assert "Spearman ρ over 8 of 12 candidate plans of the seed cell: 0.52 (target ≥ 0.7)" in text
    assert "| plan_03.json | 0.0412 | 33.5% | 3,900 / 7,590 |" in text
    assert "| minus20 |" not in text  # not recorded, not rendered
    assert "seed: made before a fix." in text


@pytest.mark.parametrize("xs", list(itertools.permutations([1.0, 2.0, 3.0])))
def test_spearman_is_one_with_itself(xs):
    assert sb.spearman(list(xs), list(xs)) == pytest.approx(1.0)


def test_a_cells_outputs_are_kept_beside_the_record(tmp_path, monkeypatch):
    folder = tmp_path / "s-seed"
    (folder / "candidates").mkdir(parents=True)
    for f in ("report.md", "plan.json", "pareto.png", "model.safetensors"):
        (folder / f).write_text(f)
    (folder / "candidates" / "plan_00.json").write_text("{}")
    monkeypatch.setattr(sb, "OUT", tmp_path / "results" / "search_test")
    (tmp_path / "results").mkdir()
    kept = sb._keep(folder, "seed")
    assert kept == tmp_path / "results" / "search_test_seed"
    names = sorted(str(p.relative_to(kept)) for p in kept.rglob("*"))
    assert names == [
        "candidates",
        "candidates/plan_00.json",
        "pareto.png",
        "plan.json",
        "report.md",
    ]
    (folder / "plan.json").write_text("new")
    assert (sb._keep(folder, "seed") / "plan.json").read_text() == "new"  # a rerun replaces it


def _fake_spearman_run(tmp_path, monkeypatch, pass_of: dict[str, float]) -> list[list[str]]:
    """Point the script at tmp_path and let `prunekit eval` write a report with `pass_of[plan]`;
    returns the list the commands run are appended to."""
    monkeypatch.setattr(sb, "ROOT", tmp_path)
    monkeypatch.setattr(sb, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(sb, "OUT", tmp_path / "results" / "search_test")
    monkeypatch.setattr(sb, "RECORD", tmp_path / "results" / "search_test.json")
    monkeypatch.setattr(sb, "_machine", lambda: {"cpu": "Test CPU", "cpu_flags": []})
    ran: list[list[str]] = []

    def call(args):
        ran.append(args)
        if args[0] == "eval":
            folder = Path(args[1])
            folder.mkdir(parents=True, exist_ok=True)
            he = {"pass@1": pass_of[folder.name.removeprefix("s-seed-")]}
            (folder / "report.json").write_text(json.dumps({"evaluation": {"humaneval": he}}))
            row = {"task_id": "HumanEval/0", "passed": he["pass@1"] > 0.3}
            (folder / "humaneval_problems.jsonl").write_text(json.dumps(row) + "\n")
        return {"wall_s": 1.0, "cpu_s": 2.0}

    monkeypatch.setattr(sb, "_call", call)
    return ran


def _write_plans(tmp_path, fitness: dict[str, float]) -> None:
    cands = tmp_path / "results" / "search_test_seed" / "candidates"
    cands.mkdir(parents=True, exist_ok=True)
    for name, f in fitness.items():
        (cands / f"{name}.json").write_text(json.dumps({"fitness": f}))


def test_spearman_cell_grows_over_calls_and_drops_plans_a_rerun_replaced(tmp_path, monkeypatch):
    passes = {"plan_00": 0.5, "plan_01": 0.2, "plan_02": 0.4}
    ran = _fake_spearman_run(tmp_path, monkeypatch, passes)
    _write_plans(tmp_path, {"plan_00": 0.01, "plan_01": 0.05, "plan_02": 0.03})
    sb._run_spearman(at_most=2)
    cell = json.loads(sb.RECORD.read_text())["cells"]["spearman"]
    assert [c["plan"] for c in cell["candidates"]] == ["plan_00.json", "plan_01.json"]
    assert cell["of"] == 3 and cell["rho"] is None  # two points rank nothing
    assert [a[0] for a in ran] == ["search", "eval"] * 2

    ran.clear()
    sb._run_spearman(at_most=None)
    cell = json.loads(sb.RECORD.read_text())["cells"]["spearman"]
    assert [a[1] for a in ran if a[0] == "eval"] == [str(sb.RUNS / "s-seed-plan_02")]  # only new
    assert len(cell["candidates"]) == 3
    assert cell["rho"] == pytest.approx(1.0)  # lowest KL ↔ highest pass@1, in order

    # a seed rerun writes another plan_01: only that one is judged again
    ran.clear()
    passes["plan_01"] = 0.6
    _write_plans(tmp_path, {"plan_01": 0.002})
    sb._run_spearman(at_most=None)
    cell = json.loads(sb.RECORD.read_text())["cells"]["spearman"]
    assert [a[1] for a in ran if a[0] == "eval"] == [str(sb.RUNS / "s-seed-plan_01")]
    assert {c["plan"]: c["pass@1"] for c in cell["candidates"]} == {
        "plan_00.json": 0.5, "plan_01.json": 0.6, "plan_02.json": 0.4
    }  # fmt: skip
    assert "Spearman ρ over 3 of 3 candidate plans of the seed cell: 1.00" in sb.render(
        {"cells": {"spearman": cell}}
    )


def test_spearman_without_plans_says_to_run_the_seed_cell(tmp_path, monkeypatch):
    _fake_spearman_run(tmp_path, monkeypatch, {})
    with pytest.raises(SystemExit, match="run --run seed first"):
        sb._run_spearman(at_most=None)


def test_spread_first_judges_the_extremes_then_fills_the_widest_gap():
    todo = {"a": 0.01, "b": 0.02, "c": 0.05, "d": 0.10}
    # best, worst, then c (0.04 from a) before b (0.01 from a)
    assert sb.spread_first(todo, []) == ["a", "d", "c", "b"]
    # with 0.10 judged already: a is farthest from it, then c (0.04 from a) beats b (0.01 from a)
    assert sb.spread_first({k: v for k, v in todo.items() if k != "d"}, [0.10]) == ["a", "c", "b"]


def test_spearman_reuses_the_seed_cells_own_outcomes_for_its_chosen_plan(tmp_path, monkeypatch):
    ran = _fake_spearman_run(tmp_path, monkeypatch, {"plan_01": 0.2, "plan_02": 0.1})
    cands = tmp_path / "results" / "search_test_seed" / "candidates"
    cands.mkdir(parents=True)
    for name, levels, f in [
        ("plan_00", [0, 1], 0.01),
        ("plan_01", [1, 1], 0.02),
        ("plan_02", [2, 1], 0.03),
    ]:
        (cands / f"{name}.json").write_text(
            json.dumps({"levels": levels, "vocabulary": None, "fitness": f})
        )
    (cands.parent / "plan.json").write_text(json.dumps({"levels": [0, 1], "vocabulary": None}))
    seed = {"pass@1": 0.47, "solved": {"HumanEval/0": True}, "machine": {"cpu": "Seed CPU"}}
    sb.RECORD.write_text(json.dumps({"cells": {"seed": seed}}))
    sb._run_spearman(at_most=None)
    evals = [a[1] for a in ran if a[0] == "eval"]
    assert evals == [str(sb.RUNS / "s-seed-plan_02"), str(sb.RUNS / "s-seed-plan_01")]
    cell = json.loads(sb.RECORD.read_text())["cells"]["spearman"]
    first = cell["candidates"][0]
    assert (first["plan"], first["pass@1"], first["commands"]) == ("plan_00.json", 0.47, [])
    assert cell["rho"] == pytest.approx(1.0)  # 0.47, 0.2, 0.1 in fitness order
    assert "| plan_00.json | 0.0100 | 47.0% | (the seed cell's own model) |" in sb.render(
        {"cells": {"spearman": cell}}
    )
