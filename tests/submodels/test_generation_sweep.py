"""`prunekit submodels ... --benchmark humaneval-x:js,python` end to end on a tiny random model:
every sub-model and the dense model are judged by generation through the generic runner, the
per-problem rows are kept per cell, and the pass@1 matrix with its diagonal tests is written."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main
from prunekit.evaluation.toolchains import TOOLCHAINS

JS_MISSING = TOOLCHAINS["js"].missing()


def _args(tiny_model_dir, out, *extra: str) -> list[str]:
    return [
        "submodels",
        str(tiny_model_dir),
        "--languages",
        "python,javascript",
        "--sparsity",
        "0.5",
        "--calib-samples",
        "4",
        "--seq-len",
        "32",
        "--ppl-tokens",
        "128",
        "--ppl-seq-len",
        "32",
        "--save",
        "none",
        *extra,
        "-o",
        str(out),
    ]


@pytest.mark.skipif(JS_MISSING is not None, reason=JS_MISSING or "")
def test_sweep_judged_by_generation(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    gen = ["--benchmark", "humaneval-x:js,python", "--limit", "2", "--max-new-tokens", "6"]
    assert main(_args(tiny_model_dir, out, *gen, "--no-progress")) == 0
    printed = capsys.readouterr().out
    assert "pass@1 (rows = calibration, columns = benchmark)" in printed
    sub = json.loads((out / "report.json").read_text())["submodels"]
    (m,) = sub["generation"]
    assert m["rows"] == ["dense", "python", "javascript"]
    assert m["benchmarks"] == ["humaneval-x:js", "humaneval-x:python"]
    for row in m["rows"]:
        for bench in m["benchmarks"]:
            assert m["cells"][row][bench]["problems"] == 2
    diag = {d["benchmark"]: d for d in m["diagonal"]}
    assert diag["humaneval-x:js"]["calibration"] == "javascript"
    assert set(diag["humaneval-x:js"]["against"]) == {"python"}
    assert diag["humaneval-x:python"]["against"]["javascript"]["pairs"] == 2
    assert all(d["verdict"] in ("held", "not held") for d in m["diagonal"])
    # rows kept per cell, as the runner writes them, and the sections beside them
    rows = (out / "generation" / "javascript_s0.50" / "humaneval-x-js_problems.jsonl").read_text()
    assert [json.loads(x)["task_id"] for x in rows.splitlines()] == ["JavaScript/0", "JavaScript/1"]
    assert (out / "generation" / "dense" / "humaneval-x-python_problems.jsonl").is_file()
    runs = sub["generation_runs"]
    assert set(runs) == {"dense", "python@0.5", "javascript@0.5"}
    assert runs["dense"]["humaneval-x:js"]["benchmark"] == "HumanEval-X JavaScript"
    assert sub["generation_config"]["benchmarks"] == m["benchmarks"]
    assert (out / "generation_s0.50.png").is_file() and (out / "generation_s0.50.md").is_file()
    assert "### Judged by generation" in (out / "report.md").read_text()
    assert any("diagonal claim" in line for line in sub["summary"])


def test_bad_benchmark_is_one_line_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "run"
    args = _args("no-such-model", out, "--benchmark", "humaneval-x:java,cobol")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'humaneval-x:cobol'" in err[0]
    assert not out.exists()
