"""`prunekit compare`: tolerant table, problem-by-problem diffs, plot."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.reports.compare import MISSING, load_entry, metrics, problem_diffs, table


def _write(folder, report, problems=None):
    folder.mkdir(parents=True)
    if problems is not None:
        report.setdefault("evaluation", {}).setdefault("humaneval", {})["problems_file"] = "p.jsonl"
        (folder / "p.jsonl").write_text(
            "".join(json.dumps({"task_id": t, "passed": ok}) + "\n" for t, ok in problems.items())
        )
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture
def runs(tmp_path):
    dense = _write(
        tmp_path / "dense",
        {
            "model": {"id": "qwen2.5-coder-0.5b"},
            "params": {"total": 494_000_000, "nonzero": 494_000_000},
            "evaluation": {
                "perplexity": {"python": {"ppl": 2.5, "tokens": 100, "seq_len": 64}},
                "humaneval": {"pass@1": 0.5, "mode": "chat", "problems": 164, "limited": False},
                "speed": {
                    "prefill": {"tokens_per_s": 300.0},
                    "decode": {
                        "batch_1": {"batch": 1, "tokens_per_s": 5.0},
                        "batch_8": {"batch": 8, "tokens_per_s": 30.0},
                    },
                    "memory": {"peak_rss_mb": 2500.0},
                    "disk": {"bytes": 2 * 2**30},
                },
            },
        },
        problems={"HumanEval/0": True, "HumanEval/1": True, "HumanEval/2": False},
    )
    wanda = _write(
        tmp_path / "wanda50",
        {
            "method": {"name": "wanda", "sparsity": 0.5, "pattern": "unstructured"},
            "params": {"total": 494_000_000, "nonzero": 300_000_000},
            "sparsity": {"target": 0.5, "achieved": 0.5},
            "evaluation": {
                "perplexity": {"python": {"ppl": 3.1}, "java": {"ppl": 4.0}},
                "humaneval": {"pass@1": 0.25, "mode": "chat", "problems": 4, "limited": True},
            },
        },
        problems={"HumanEval/0": True, "HumanEval/1": False, "HumanEval/2": True},
    )
    bare = _write(tmp_path / "bare", {"method": {"name": "sparsegpt", "pattern": "2:4"}})
    return dense, wanda, bare


def test_table_is_tolerant_of_missing_sections(runs):
    entries = [load_entry(r) for r in runs]
    headers, rows = table(entries)
    assert headers[:5] == ["run", "method", "params (M)", "non-zero (M)", "sparsity"]
    assert "ppl java" in headers and "ppl python" in headers and "decode b8 tok/s" in headers
    col = {h: i for i, h in enumerate(headers)}
    dense, wanda, bare = rows
    assert dense[col["method"]] == "dense" and dense[col["pass@1"]] == "50.0% [chat]"
    assert dense[col["ppl java"]] == MISSING and dense[col["disk MiB"]] == "2048.0"
    assert wanda[col["method"]] == "wanda 50%" and "4 probl." in wanda[col["pass@1"]]
    assert wanda[col["decode b1 tok/s"]] == MISSING
    assert bare[col["method"]] == "sparsegpt 2:4"
    assert all(c == MISSING for c in bare[2:])


def test_problem_diffs(runs):
    entries = [load_entry(r) for r in runs]
    (d,) = problem_diffs(entries)
    assert d["run"] == "wanda50" and d["lost"] == ["HumanEval/1"] and d["gained"] == ["HumanEval/2"]
    assert d["both_pass"] == 1 and d["common"] == 3


def test_metrics_of_empty_report():
    m = metrics({})
    assert m["method"] == "dense" and m["pass@1"] is None and m["ppl"] == {}


def test_cli_prints_table_and_writes_plot(runs, tmp_path, capsys):
    png, md = tmp_path / "out" / "cmp.png", tmp_path / "cmp.md"
    assert main(["compare", *map(str, runs), "--plot", str(png), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "wanda50" in out and "lost 1, gained 1" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.read_text().startswith("| run |")


def test_missing_or_bad_report(tmp_path, capsys):
    with pytest.raises(PrunekitError, match="prunekit eval"):
        load_entry("qwen2.5-coder-0.5b-not-a-folder")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text("{nope")
    assert main(["compare", str(tmp_path / "broken"), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "not a readable JSON report" in err and len(err.strip().splitlines()) == 1


def test_table_from_real_prune_reports(tmp_path):
    """The labels come from what `api.prune` writes (a 50% Wanda run used to show as just 'wanda')."""
    import torch

    import prunekit
    from conftest import tiny_model

    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    runs = []
    for name, kwargs in {
        "w50": {"method": "wanda", "sparsity": 0.5},
        "owl60": {"method": "wanda", "sparsity": 0.6, "allocation": "owl"},
        "sgpt24": {"method": "sparsegpt", "pattern": "2:4"},
    }.items():
        result = prunekit.prune(
            tiny_model("llama"), calib=ids, seq_len=16, batch_size=2, progress=False, **kwargs
        )
        prunekit.save(result, tmp_path / name)
        runs.append(load_entry(tmp_path / name))
    headers, rows = table(runs)
    col = headers.index("method")
    assert [r[col] for r in rows] == ["wanda 50%", "wanda 60% + owl", "sparsegpt 2:4"]
    assert rows[0][headers.index("sparsity")] == "50.0%"


def test_recipe_reports_are_labelled_by_their_steps():
    step = {"step": "unstructured", "method": {"name": "wanda", "sparsity": 0.5}}
    report = {"steps": [{"step": "depth"}, step]}
    assert metrics(report)["method"] == "depth → wanda 50%"
