"""benchmarks/search.py, its pure parts: Spearman ρ against the textbook formula, pairing with the
repair record's per-problem outcomes, and the table it renders from a hand-made record."""

from __future__ import annotations

import itertools
import json

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
    sp = {"candidates": [{}] * 8, "rho": 0.52, "target": 0.7}
    refs = {"dense": {"HumanEval/0": True, "HumanEval/1": False}}
    text = sb.render({"cells": {"seed": cell, "spearman": sp}}, refs)
    assert "References (benchmarks/repair.py's record, full HumanEval): dense 50.0%." in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| seed |"))
    assert "40.2%" in row and "≥ 45%" in row and "+3/−30" in row and "3,900 / 7,590" in row
    assert "Test CPU (avx2)" in row
    assert "Spearman ρ over 8 candidates: 0.52 (target ≥ 0.7)" in text
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
