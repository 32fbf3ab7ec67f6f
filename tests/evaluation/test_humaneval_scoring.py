"""run_humaneval scores what was generated: with generation replaced by known completions (two
canonical solutions, one wrong), pass@1, the solved count and the per-problem rows must follow."""

import json

import pytest

from conftest import _train_tokenizer
from prunekit.evaluation import generation
from prunekit.evaluation import humaneval as he
from prunekit.evaluation.generation import Generation
from prunekit.evaluation.sandbox import Limits


def test_pass_at_1_and_rows_follow_the_completions(monkeypatch, tmp_path):
    problems = he.load_problems(limit=3)
    completions = [
        problems[0].canonical_solution + "\n\ndef unrelated():\n    pass\n",  # cut at the stop
        "    return None\n",
        problems[2].canonical_solution,
    ]
    seen = {}

    def fake_generate(model, tokenizer, prompts, **kwargs):
        seen["prompts"] = prompts
        return [[Generation(c, 7)] for c in completions], {"generated_tokens": 21}

    monkeypatch.setattr(generation, "generate_batched", fake_generate)
    jsonl = tmp_path / "rows.jsonl"
    res = he.run_humaneval(
        None,
        _train_tokenizer(),
        mode="completion",
        limit=3,
        limits=Limits(wall_s=10, cpu_s=10),
        jsonl_path=jsonl,
        progress=False,
    )
    assert seen["prompts"] == [p.prompt for p in problems]
    assert res["pass@1"] == pytest.approx(2 / 3, abs=1e-6) and res["solved"] == 2
    assert res["problems"] == 3 and res["generated_tokens"] == 21
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [p.task_id for p in problems]
    assert [r["passed"] for r in rows] == [True, False, True]
    assert "unrelated" not in rows[0]["completion"]
    assert rows[1]["error"] and not rows[1]["passed"]
