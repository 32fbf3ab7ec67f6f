"""`prunekit compare` on reports with several code benchmarks: a pass@1 column per benchmark, a
pooled pass@1 over the benchmarks all reports carry, and a paired test over the union of
(benchmark, problem) pairs, checked against hand counts."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main
from prunekit.reports.compare import (
    load_entry,
    pooled_benchmarks,
    pooled_pass,
    pooled_tests,
    render_pooled,
    table,
)

CPP, JAVA = "humaneval-x:cpp", "humaneval-x:java"


def _run(folder, outcomes: dict[str, dict[str, bool]], extra: dict | None = None):
    """A report whose code sections point to per-problem rows beside it."""
    folder.mkdir(parents=True)
    ev = dict(extra or {})
    for bench, out in outcomes.items():
        name = bench.replace(":", "-") + "_problems.jsonl"
        rows = [{"task_id": t, "passed": p, "n": 1, "correct": int(p)} for t, p in out.items()]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        solved = sum(out.values())
        ev[bench] = {"pass@1": solved / len(out), "problems": len(out), "problems_file": name}
    (folder / "report.json").write_text(json.dumps({"evaluation": ev}))
    return folder


@pytest.fixture
def runs(tmp_path):
    base = _run(
        tmp_path / "base",
        {
            CPP: {"CPP/0": True, "CPP/1": True, "CPP/2": False},
            JAVA: {"Java/0": True, "Java/1": False},
        },
        # HumanEval only here: not common to every report, so not pooled
        extra={"humaneval": {"pass@1": 0.5, "problems": 164, "mode": "chat"}},
    )
    other = _run(
        tmp_path / "other",
        {
            CPP: {"CPP/0": True, "CPP/1": False, "CPP/2": False},
            JAVA: {"Java/0": True, "Java/1": True, "Java/2": True},  # Java/2: unpaired
        },
    )
    worse = _run(
        tmp_path / "worse",
        {CPP: dict.fromkeys(("CPP/0", "CPP/1", "CPP/2"), False), JAVA: {"Java/0": False}},
    )
    return [load_entry(r) for r in (base, other, worse)]


def test_columns_and_pooled_pass_from_hand_counts(runs):
    assert pooled_benchmarks(runs) == [CPP, JAVA]
    # base 3 of 5; other 1 of 3 + 3 of 3 = 4 of 6; worse 0 of 4
    assert pooled_pass(runs[0].report, [CPP, JAVA]) == pytest.approx(3 / 5)
    assert pooled_pass(runs[1].report, [CPP, JAVA]) == pytest.approx(4 / 6)
    assert pooled_pass(runs[2].report, [CPP, JAVA]) == 0.0
    headers, rows = table(runs)
    col = {h: i for i, h in enumerate(headers)}
    assert f"pass@1 {CPP}" in col and "pooled pass@1 (2 benchmarks)" in col
    pooled = [r[col["pooled pass@1 (2 benchmarks)"]] for r in rows]
    assert pooled == ["60.0%", "66.7%", "0.0%"]
    assert [r[col[f"pass@1 {JAVA}"]] for r in rows] == ["50.0%", "100.0%", "0.0%"]
    assert rows[0][col["pass@1"]] == "50.0% [chat]" and rows[1][col["pass@1"]] == "—"


def test_paired_test_over_the_union_of_problems(runs):
    other, worse = pooled_tests(runs)
    # other vs base: CPP/0 both, CPP/1 base only, CPP/2 neither, Java/0 both, Java/1 other only
    assert (other["pairs"], other["both"], other["only_a"], other["only_b"]) == (5, 2, 1, 1)
    assert (other["neither"], other["unpaired"], other["p_value"]) == (1, 1, 1.0)
    assert other["by_benchmark"][JAVA]["unpaired"] == 1
    # worse vs base: base alone solves CPP/0, CPP/1, Java/0; Java/1 is unpaired
    assert (worse["pairs"], worse["only_a"], worse["only_b"], worse["unpaired"]) == (4, 3, 0, 1)
    assert worse["p_value"] == pytest.approx(2 / 2**3)
    line = render_pooled(worse)
    assert (
        "worse vs base (humaneval-x:cpp, humaneval-x:java): 4 paired problems, 1 unpaired" in line
    )
    assert "pass@1 0.0% vs 75.0%" in line and "solves 0 that base does not and loses 3" in line
    assert "p = 0.25" in line


def test_one_benchmark_in_common_gets_no_pooled_score(tmp_path):
    a = _run(tmp_path / "a", {CPP: {"CPP/0": True}, JAVA: {"Java/0": True}})
    b = _run(tmp_path / "b", {CPP: {"CPP/0": False}})
    entries = [load_entry(a), load_entry(b)]
    assert pooled_benchmarks(entries) == [] and pooled_tests(entries) == []
    assert not any(h.startswith("pooled") for h in table(entries)[0])


def test_sampled_rows_are_reported_not_compared(tmp_path):
    a = _run(tmp_path / "a", {CPP: {"CPP/0": True}, JAVA: {"Java/0": True}})
    b = _run(tmp_path / "b", {CPP: {"CPP/0": False}, JAVA: {"Java/0": True}})
    sampled = {"task_id": "CPP/0", "passed": None, "n": 5, "correct": 2}
    (b / "humaneval-x-cpp_problems.jsonl").write_text(json.dumps(sampled) + "\n")
    (test,) = pooled_tests([load_entry(a), load_entry(b)])
    assert "one sample per problem" in test["error"]
    assert render_pooled(test).startswith("pooled code benchmarks, b vs a: not compared")


def test_cli_prints_and_writes_the_pooled_test(runs, tmp_path, capsys):
    md = tmp_path / "cmp.md"
    folders = [str(e.path.parent) for e in runs]
    assert main(["compare", *folders, "--no-plot", "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "pooled pass@1 (2 benchmarks)" in out
    assert "pooled code benchmarks, other vs base" in out and "p = 1" in out
    assert "pooled code benchmarks, worse vs base" in md.read_text()


def test_a_broken_rows_file_names_its_report(runs, capsys):
    bad = runs[1].path.parent / "humaneval-x-java_problems.jsonl"
    bad.write_text("{nope\n")
    assert main(["compare", *(str(e.path.parent) for e in runs), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other" in err[0]
