"""The sub-model matrix judged by generation: hand-counted cells, diagonal verdicts, rendering."""

from __future__ import annotations

import pytest

from prunekit.errors import PrunekitError
from prunekit.evaluation.paired import mcnemar_exact
from prunekit.submodels.by_generation import (
    build_matrix,
    diagonal_row,
    parse_benchmarks,
    plot_heatmap,
    render_markdown,
    summarize,
)

JAVA, CPP = "humaneval-x:java", "humaneval-x:cpp"


def _rows(prefix: str, passed: list[bool]) -> list[dict]:
    return [
        {"task_id": f"{prefix}/{i}", "passed": p, "n": 1, "correct": int(p)}
        for i, p in enumerate(passed)
    ]


def _cells() -> dict:
    # 20 Java problems: the java sub-model solves 0-11, python solves 0-1, cpp solves 0-4 and 12
    # so java vs python: +10/-0 (p = 2/2**10), java vs cpp: +7/-1 (p = 2*9/2**8 = 0.0703)
    # 10 C++ problems: cpp solves 0-2, java solves 0-5 -> the C++ diagonal is worse than java
    java = {
        "java": [i < 12 for i in range(20)],
        "python": [i < 2 for i in range(20)],
        "cpp": [i < 5 or i == 12 for i in range(20)],
        "dense": [i < 15 for i in range(20)],
    }
    cpp = {
        "java": [i < 6 for i in range(10)],
        "python": [False] * 10,
        "cpp": [i < 3 for i in range(10)],
    }
    cpp["dense"] = [True] * 10
    return {
        r: {JAVA: _rows("Java", java[r]), CPP: _rows("CPP", cpp[r])}
        for r in ("dense", "python", "java", "cpp")
    }


def test_cells_and_diagonal_tests_match_hand_counts():
    m = build_matrix(_cells(), 0.5)
    assert m["rows"] == ["dense", "python", "java", "cpp"] and m["benchmarks"] == [JAVA, CPP]
    assert m["cells"]["java"][JAVA] == {"pass@1": 0.6, "solved": 12, "problems": 20}
    assert m["cells"]["cpp"][CPP]["solved"] == 3
    java, cpp = m["diagonal"]
    assert java["calibration"] == "java" and java["pass@1"] == pytest.approx(0.6)
    assert java["against"]["python"] == {
        "pairs": 20,
        "diagonal_only": 10,
        "other_only": 0,
        "p_value": round(2 / 2**10, 6),
    }
    assert java["against"]["cpp"]["diagonal_only"] == 7
    assert java["against"]["cpp"]["other_only"] == 1
    assert java["against"]["cpp"]["p_value"] == pytest.approx(mcnemar_exact(7, 1), abs=1e-6)
    assert java["vs_dense"]["other_only"] == 3 and "dense" not in java["against"]
    # better than both, but not significantly than cpp (p = 0.07): not held, p = the largest
    assert java["verdict"] == "not held" and java["held"] is False
    assert java["p_value"] == pytest.approx(0.070312, abs=1e-6) and "cpp" in java["why"]
    assert cpp["verdict"] == "not held" and "not better than java" in cpp["why"]


def test_held_when_every_comparison_is_significant_in_the_diagonals_favour():
    cells = _cells()
    cells["cpp"][JAVA] = _rows("Java", [False] * 20)  # now java vs cpp: +12/-0
    java = build_matrix(cells)["diagonal"][0]
    assert java["verdict"] == "held" and java["held"] is True
    assert java["p_value"] == pytest.approx(
        max(mcnemar_exact(10, 0), mcnemar_exact(12, 0)), abs=1e-6
    )
    assert "significantly better" in java["why"]


def test_missing_cells_and_rows_without_a_diagonal():
    cells = _cells()
    del cells["python"][JAVA]
    cells["text"] = {CPP: _rows("CPP", [False] * 10)}  # a calibration with no benchmark of its own
    m = build_matrix(cells)
    assert m["cells"]["python"][JAVA] is None and m["cells"]["text"][JAVA] is None
    java = m["diagonal"][0]
    assert set(java["against"]) == {"cpp"}
    assert set(m["diagonal"][1]["against"]) == {"python", "java", "text"}
    only_diag = build_matrix({"java": {JAVA: _rows("Java", [True])}})
    assert only_diag["diagonal"][0]["verdict"] == "untested"


def test_cells_judged_on_different_problems_are_refused():
    cells = _cells()
    cells["cpp"][JAVA] = cells["cpp"][JAVA][:10]
    with pytest.raises(PrunekitError, match="unpaired"):
        build_matrix(cells)
    with pytest.raises(PrunekitError, match="nothing to tabulate"):
        build_matrix({"java": {}})


def test_diagonal_row_maps_corpus_names_to_benchmark_languages():
    rows = ["dense", "python", "java", "cpp", "javascript", "text"]
    assert diagonal_row("humaneval-x:js", rows) == "javascript"
    assert diagonal_row("humaneval-x:cpp", rows) == "cpp"
    assert diagonal_row("humaneval", rows) == "python"
    assert diagonal_row("humaneval-x:go", rows) is None


def test_parse_benchmarks():
    assert parse_benchmarks("humaneval-x:cpp,java,javascript,python") == [
        "humaneval-x:cpp",
        "humaneval-x:java",
        "humaneval-x:js",
        "humaneval-x:python",
    ]
    assert len(parse_benchmarks("humaneval-x")) == 5
    assert parse_benchmarks("humaneval,humaneval-x:go") == ["humaneval", "humaneval-x:go"]
    with pytest.raises(PrunekitError, match="unknown benchmark 'humaneval-x:cobol'"):
        parse_benchmarks("humaneval-x:java,cobol")
    with pytest.raises(PrunekitError, match="empty"):
        parse_benchmarks(" , ")


def test_markdown_summary_and_heatmap(tmp_path):
    m = build_matrix(_cells(), 0.5)
    md = render_markdown(m)
    assert "| java | 10.0% (2/20) | **60.0% (12/20)** |" not in md  # rows are calibrations
    assert "| java | **60.0% (12/20)** | 60.0% (6/10) |" in md
    assert "| cpp | 30.0% (6/20) | **30.0% (3/10)** |" in md
    assert "python: +10/−0 (p = 0.002)" in md and "not held" in md
    lines = summarize(m)
    assert len(lines) == 2 and "NOT HELD" in lines[0] and "sparsity 0.5" in lines[0]
    path = plot_heatmap(m, tmp_path / "g.png")
    assert path.stat().st_size > 1000
