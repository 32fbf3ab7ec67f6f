"""`prunekit.search(...)` end to end on the tiny model: a result within the budget whose exported
model's KL equals the stitched fitness, a resumed search that ends where an uninterrupted one does,
and the HumanEval decontamination record of the fitness split."""

from __future__ import annotations

from tests.search.conftest import SMALL, tiny_lm

import prunekit
from prunekit.search.config import SearchConfig


def test_search_finds_a_plan_within_budget(tiny_model_dir, answering, tmp_path):
    model, tok = tiny_lm(tiny_model_dir)
    cfg = SearchConfig(budget="params=0.7", max_generations=3, hours=1.0, **SMALL)
    result = prunekit.search(model, tok, cfg)
    s = result.report["search"]
    assert s["budget"]["chosen"] <= s["budget"]["limit"]
    assert s["generations"] == 3 and s["stop_reason"] == "max_generations 3"
    assert abs(s["best"]["direct_fitness"] - s["best"]["fitness"]) < 1e-6
    assert s["trace"] == sorted(s["trace"], reverse=True)  # elitist: never worse
    assert s["fitness"]["decontamination"]["fitness_sequences_with_humaneval_ngram"] == 0
    assert s["fitness"]["decontamination"]["fitness_sequences_rechecked"] == s["fitness"]["sequences"]
    assert s["candidates"] and all(c["value"] <= s["budget"]["limit"] for c in s["candidates"])
