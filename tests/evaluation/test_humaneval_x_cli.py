"""`prunekit eval MODEL --benchmark humaneval-x:java --limit 2` end to end on a tiny random
model: its answers fail, but generation, assembly, compilation, the sandbox, the report and the
per-problem rows all run."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main
from prunekit.evaluation.toolchains import TOOLCHAINS

JAVA_MISSING = TOOLCHAINS["java"].missing()


@pytest.mark.skipif(JAVA_MISSING is not None, reason=JAVA_MISSING or "")
def test_eval_benchmark_humaneval_x_java_end_to_end(tiny_model_dir, tmp_path, capsys):
    report = tmp_path / "report.json"
    argv = ["eval", str(tiny_model_dir), "--benchmark", "humaneval-x:java", "--limit", "2"]
    argv += ["--max-new-tokens", "8", "--report", str(report), "--no-progress"]
    assert main(argv) == 0
    section = json.loads(report.read_text())["evaluation"]["humaneval-x:java"]
    assert section["benchmark"] == "HumanEval-X Java" and section["problems"] == 2
    assert section["limited"] and section["pass@1"] == 0.0 and section["language"] == "Java"
    assert "javac" in section["toolchain"] and section["energy"]["energy_j"] >= 0
    assert sum(section["outcomes"].values()) == 2 and "passed" not in section["outcomes"]
    rows_file = tmp_path / "humaneval-x-java_problems.jsonl"
    rows = [json.loads(x) for x in rows_file.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["Java/0", "Java/1"]
    assert all(r["passed"] is False and r["error"] and "completion" in r for r in rows)
    assert "HumanEval-X Java [completion" in capsys.readouterr().out


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunekit: error: ")
    return lines[0]


def test_unknown_benchmark_is_one_line_before_loading(tiny_model_dir, capsys):
    err = _one_line_error(capsys, ["eval", str(tiny_model_dir), "--benchmark", "humaneval-x:cobol"])
    assert "unknown benchmark 'humaneval-x:cobol'; choose one of: humaneval," in err


def test_one_jsonl_file_for_several_benchmarks_is_refused(tiny_model_dir, tmp_path, capsys):
    argv = ["eval", str(tiny_model_dir), "--benchmark", "humaneval-x"]
    err = _one_line_error(capsys, [*argv, "--humaneval-jsonl", str(tmp_path / "x.jsonl")])
    assert "--humaneval-jsonl names one file" in err


def test_help_lists_the_registered_benchmarks(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "humaneval-x:java" in out and "--humaneval" in out
