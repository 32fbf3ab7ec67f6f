"""The pooled paired score: McNemar counts over (benchmark, problem) pairs."""

from __future__ import annotations

import json

import pytest

from prunekit.errors import PrunekitError
from prunekit.evaluation.paired import mcnemar_exact, pooled_paired, read_rows


def _rows(outcomes: dict[str, bool]) -> list[dict]:
    return [{"task_id": t, "passed": p, "n": 1, "correct": int(p)} for t, p in outcomes.items()]


def test_counts_pool_languages_and_keep_them_apart():
    a = {
        "humaneval-x:cpp": _rows({"CPP/0": True, "CPP/1": True, "CPP/2": False}),
        "humaneval-x:go": _rows({"Go/0": True, "Go/1": False}),
    }
    b = {
        "humaneval-x:cpp": _rows({"CPP/0": True, "CPP/1": False, "CPP/2": True}),
        "humaneval-x:go": _rows({"Go/0": False, "Go/1": False, "Go/2": True}),
    }
    c = pooled_paired(a, b)
    assert (c.pairs, c.both, c.only_a, c.only_b, c.neither, c.unpaired) == (5, 1, 2, 1, 1, 1)
    assert c.by_benchmark["humaneval-x:go"]["only_a"] == 1
    assert c.by_benchmark["humaneval-x:go"]["unpaired"] == 1
    assert c.paired_benchmarks == ["humaneval-x:cpp", "humaneval-x:go"]
    assert c.pass_a == pytest.approx(3 / 5) and c.pass_b == pytest.approx(2 / 5)
    d = c.as_dict()
    assert d["difference"] == pytest.approx(0.2) and 0 < d["p_value"] <= 1


def test_same_task_ids_in_two_benchmarks_are_different_pairs():
    a = {"x": _rows({"0": True}), "y": _rows({"0": False})}
    b = {"x": _rows({"0": False}), "y": _rows({"0": True})}
    c = pooled_paired(a, b)
    assert (c.pairs, c.only_a, c.only_b) == (2, 1, 1)


def test_exact_mcnemar():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (1 + 7) / 2**7)


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(PrunekitError, match="share no scored problems"):
        pooled_paired({"x": _rows({"0": True})}, {"y": _rows({"0": True})})
    sampled = [{"task_id": "0", "passed": None, "n": 5, "correct": 2}]
    with pytest.raises(PrunekitError, match="one sample per problem"):
        pooled_paired({"x": sampled}, {"x": sampled})
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows({"0": True})))
    assert read_rows({"x": path}) == {"x": _rows({"0": True})}


def test_paired_benchmarks_leave_out_those_only_one_model_has():
    a = {"x": _rows({"0": True}), "y": _rows({"0": True})}
    b = {"x": _rows({"0": False})}
    assert pooled_paired(a, b).paired_benchmarks == ["x"]
