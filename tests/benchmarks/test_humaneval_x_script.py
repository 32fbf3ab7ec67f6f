"""benchmarks/humaneval_x.py, its pure parts: cell/language parsing, the tables and heatmaps it
renders from a recorded JSON (hand-made here; the real cells run on the benchmark lane)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from script_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "humaneval_x.py"


hx = load_script("humaneval_x")
PREFIX = {"cpp": "CPP", "java": "Java", "js": "JavaScript", "go": "Go", "python": "Python"}


def _eval(lang: str, solved: list[bool]) -> dict:
    tasks = {f"{PREFIX[lang]}/{i}": p for i, p in enumerate(solved)}
    return {
        "pass@1": sum(solved) / len(solved),
        "problems": len(solved),
        "dtype": "bfloat16",
        "solved": tasks,
    }


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """10 problems per language. Dense solves 0-7 everywhere. Each Wanda cell solves 0-5 in its
    own language and 0-1 elsewhere, except the python cell also solves 0-5 in C++."""
    cells = {"dense": {"evals": {lang: _eval(lang, [i < 8 for i in range(10)]) for lang in hx.ALL}}}
    for calib in hx.CALIB:
        own = hx.BENCH_OF.get(calib, calib)
        evals = {}
        for lang in hx.MATRIX:
            k = 6 if lang == own or (calib == "python" and lang == "cpp") else 2
            evals[lang] = _eval(lang, [i < k for i in range(10)])
        cells[f"wanda50-{calib}"] = {"evals": evals}
    for c in cells.values():
        c["machine"] = {"cpu": "test"}
    monkeypatch.setattr(hx, "OUT", tmp_path / "humaneval_x_test")
    monkeypatch.setattr(hx, "RECORD", tmp_path / "humaneval_x_test.json")
    hx.RECORD.write_text(json.dumps({"cells": cells}))
    return tmp_path


def test_parse_targets():
    assert hx.parse_targets(["dense"]) == [("dense", hx.ALL)]
    assert hx.parse_targets(["wanda50-java"]) == [("wanda50-java", hx.MATRIX)]
    assert hx.parse_targets(["wanda50-java:cpp,go"]) == [("wanda50-java", ("cpp", "go"))]
    with pytest.raises(SystemExit, match="unknown cell 'wanda60-java'"):
        hx.parse_targets(["wanda60-java"])
    with pytest.raises(SystemExit, match="unknown language"):
        hx.parse_targets(["dense:rust"])


def test_cells_cover_every_calibration_corpus():
    from prunekit.data.corpora import CORPORA

    assert all(c in CORPORA for c in hx.CALIB)
    assert {hx.BENCH_OF.get(c, c) for c in hx.CALIB} == set(hx.MATRIX)
    assert hx.CELLS["wanda50-javascript"][3] == [
        *("prune", "qwen2.5-coder-0.5b", "--method", "wanda", "--sparsity", "0.5"),
        *("--calib", "javascript"),
    ]


def test_matrix_cells_rows_are_calibrations(recorded):
    mc = hx.matrix_cells(hx._load()["cells"], "wanda50")
    assert list(mc) == ["dense", "python", "java", "cpp", "javascript"]
    assert set(mc["dense"]) == {f"humaneval-x:{x}" for x in hx.MATRIX}  # Go is not in the matrix
    assert sum(r["passed"] for r in mc["java"]["humaneval-x:java"]) == 6


def test_render_from_a_record(recorded):
    text = hx.render()
    assert (recorded / "humaneval_x_test.md").read_text() == text
    # dense beside the published figure: 80.0% vs 57.3 (Java) -> +22.7 pt
    assert "| java | 80.0% (8/10) | bfloat16 | 57.3% | +22.7 pt |" in text
    assert "| go | 80.0% (8/10) | bfloat16 | none published | — |" in text
    # java diagonal: +4/-0 against each other calibration, p = 0.125 > 0.05 -> not held
    assert "| humaneval-x:java | java 60.0% |" in text
    assert "python: +4/−0 (p = 0.125)" in text and "not held" in text
    # the cpp diagonal ties with the python cell there: not better than python
    assert "not better than python" in text
    # each Wanda cell pooled over 4 languages against dense (java: 6+2+2+2 = 12 of 40 vs 32)
    assert "- java: 30.0% vs dense 80.0% over 40 problems (4 languages): +0/−20" in text
    assert (recorded / "humaneval_x_test.png").stat().st_size > 1000
    assert "language-specific vocabulary: not run yet" in text
    assert "Not run yet: vocab-python" in text


def test_list_and_help_run_without_a_model():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, check=True
    ).stdout
    assert "wanda50-cpp" in out and "--calib cpp" in out and "vocab-java" in out
    helped = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--run" in helped


def test_compile_causes_read_the_compiler_message():
    rows = [
        {"error": "compile", "detail": "note: ‘std::set’ is defined in header ‘<set>’; did you"},
        {
            "error": "compile",
            "detail": "error: variable ‘std::stringstream ss’ has initializer but incomplete type",
        },
        {
            "error": "compile",
            "detail": "error: cannot find symbol\n  symbol:   variable Collectors",
        },
        {"error": "compile", "detail": "error: ‘is_prime’ was not declared in this scope"},
        {"error": "compile", "detail": "./main_test.go:44:6: undefined: isPrime"},
        {"error": "compile", "detail": "./main_test.go:30:42: undefined: strings.Set"},
        {"error": "compile", "detail": "error: invalid cast from type ‘boost::any’ to type ‘int’"},
        {"error": "assertion", "detail": "is defined in header"},  # not a compile failure
        {"error": None, "detail": None},
    ]
    assert hx.compile_causes(rows) == {
        "missing header/import": 3,
        "undefined name": 2,
        "other": 2,
    }


def test_render_lists_outcomes_and_cpp_causes(recorded):
    data = json.loads(hx.RECORD.read_text())
    cpp = data["cells"]["dense"]["evals"]["cpp"]
    cpp["outcomes"] = {"passed": 8, "compile": 2}
    cpp["compile_causes"] = {"missing header/import": 1, "undefined name": 1, "other": 0}
    hx.RECORD.write_text(json.dumps(data))
    text = hx.render()
    assert "| cpp | 8 | 2 | 1 | 1 | 0 |" in text
    assert "together at most 2 problems (20.0 pt)" in text


def test_pooled_line_counts_only_shared_languages(recorded):
    data = json.loads(hx.RECORD.read_text())
    del data["cells"]["dense"]["evals"]["python"]  # dense not yet judged in Python
    hx.RECORD.write_text(json.dumps(data))
    text = hx.render()
    # java cell: cpp 2 + java 6 + js 2 of 30 shared problems, vs dense 8 + 8 + 8
    assert "- java: 33.3% vs dense 80.0% over 30 problems (3 languages): +0/−14" in text


def test_record_keeps_the_machine_each_language_was_judged_on(recorded, monkeypatch):
    """A cell extended on another machine (a new language) keeps the old machine on the old
    languages, names the new one on the new language, and its command names the dtype used."""
    import prunekit.reports.report as report

    folder = hx.RUNS / "hx-wanda50-java"
    rows = [{"task_id": f"JavaScript/{i}", "passed": i < 5} for i in range(10)]
    section = {"pass@1": 0.5, "problems": 10, "dtype": "bfloat16", "problems_file": "js.jsonl"}
    monkeypatch.setattr(hx, "_report", lambda f: {"evaluation": {"humaneval-x:js": section}})
    monkeypatch.setattr(hx, "_problem_rows", lambda f, s: rows if f == folder else [])
    monkeypatch.setattr(report, "machine", lambda: {"cpu": "second"})
    monkeypatch.setattr(hx, "_cpu_flags", lambda: ["avx2"])
    hx.record("wanda50-java", {"eval_js": {"wall_s": 1.0, "cpu_s": 2.0}}, "bfloat16")
    cell = hx._load()["cells"]["wanda50-java"]
    assert cell["evals"]["js"]["machine"] == {"cpu": "second", "cpu_flags": ["avx2"]}
    assert sum(cell["evals"]["js"]["solved"].values()) == 5
    assert cell["evals"]["js"]["command"].endswith("humaneval-x:js --dtype bfloat16")
    assert cell["evals"]["java"]["machine"] == {"cpu": "test"}  # judged before, elsewhere
    assert cell["machine"] == {"cpu": "test"}  # the model was not made again
    assert cell["command"] == "benchmarks/humaneval_x.py --run wanda50-java --dtype bfloat16"
    assert "second" in hx.render() and '"cpu": "test"' in hx.render()
    hx.record("wanda50-java", {"make": {"wall_s": 1.0, "cpu_s": 2.0}}, "bfloat16")  # re-made
    cell = hx._load()["cells"]["wanda50-java"]
    assert cell["machine"]["cpu"] == "second" and cell["evals"]["java"]["machine"] == {
        "cpu": "test"
    }


def test_columns_judged_in_two_settings_say_so(recorded):
    data = json.loads(hx.RECORD.read_text())
    other = {"cpu": "second", "cpu_flags": ["avx2"]}
    for calib in hx.CALIB:
        data["cells"][f"wanda50-{calib}"]["evals"]["js"] |= {"dtype": "float32", "machine": other}
    hx.RECORD.write_text(json.dumps(data))
    text = hx.render()
    assert (
        "- humaneval-x:js was judged in more than one setting (dense: bfloat16 on test "
        "(no bf16/avx512 flags); python, java, cpp, javascript: float32 on second (avx2));"
    ) in text
    assert "humaneval-x:java was judged in more than one setting" not in text


class _CharTokenizer:
    """A stand-in tokenizer: one token per character, or per kept character (others split into
    two), so a "pruned" vocabulary makes some text longer, as dropping merges does."""

    def __init__(self, dropped: str = ""):
        self.dropped = dropped

    def __len__(self) -> int:
        return 256 - len(self.dropped)

    def __call__(self, text: str, add_special_tokens: bool = True):
        n = sum(2 if ch in self.dropped else 1 for ch in text)
        return type("Enc", (), {"input_ids": list(range(n))})()


def test_token_cost_is_the_ratio_of_summed_tokens(monkeypatch, tmp_path):
    from prunekit.evaluation.humaneval_x import load_problems

    pruned = _CharTokenizer(dropped="{}")
    monkeypatch.setattr(
        "transformers.AutoTokenizer.from_pretrained",
        lambda path: pruned if path == tmp_path else _CharTokenizer(),
    )
    monkeypatch.setattr("prunekit.models.registry.builtin_dir", lambda name: "dense")
    cost = hx.token_cost(tmp_path)
    assert cost["vocabulary"] == 254
    for lang in hx.MATRIX:
        texts = [p.prompt + p.canonical_solution for p in load_problems(lang)]
        dense = sum(map(len, texts))
        braces = sum(t.count("{") + t.count("}") for t in texts)
        got = cost["by_language"][lang]
        assert (got["dense_tokens"], got["tokens"]) == (dense, dense + braces)
        assert got["ratio"] == pytest.approx((dense + braces) / dense, abs=1e-4)
    assert cost["by_language"]["python"]["ratio"] < cost["by_language"]["java"]["ratio"]


def test_render_tokens_one_row_per_vocabulary_cell():
    by = {lang: {"ratio": 1 + i / 10} for i, lang in enumerate(hx.MATRIX)}
    cells = {"dense": {}, "vocab-java": {"tokens": {"vocabulary": 30000, "by_language": by}}}
    lines = hx.render_tokens(cells)
    row = next(ln for ln in lines if ln.startswith("| java |"))
    assert row == "| java | 30,000 | 1.00× | 1.10× | 1.20× | 1.30× |"
    assert hx.render_tokens({"dense": {}}) == []
