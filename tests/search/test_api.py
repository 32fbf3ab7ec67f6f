"""`prunekit.search(...)` end to end on the tiny model: a result within the budget whose exported
model's KL equals the stitched fitness, a resumed search that ends where an uninterrupted one does,
and the HumanEval decontamination record of the fitness split."""

from __future__ import annotations

from tests.search.search_helpers import SMALL, tiny_lm

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
    assert (
        s["fitness"]["decontamination"]["fitness_sequences_rechecked"] == s["fitness"]["sequences"]
    )
    assert s["candidates"] and all(c["value"] <= s["budget"]["limit"] for c in s["candidates"])


def _outcome(result) -> dict:
    s = result.report["search"]
    return {
        "best": s["best"]["levels"],
        "fitness": s["best"]["fitness"],
        "trace": s["trace"],
        "candidates": [(c["generation"], c["levels"], c["fitness"]) for c in s["candidates"]],
        "partial": s["partial_candidates"],
        "evaluations": s["evaluations"],
        "generations": s["generations"],
    }


def test_resume_ends_where_an_uninterrupted_search_does(tiny_model_dir, answering, tmp_path):
    base = dict(budget="params=0.6", hours=1.0, **SMALL)
    model, tok = tiny_lm(tiny_model_dir)
    whole = prunekit.search(model, tok, SearchConfig(max_generations=4, **base))
    work = str(tmp_path / "work")
    model, tok = tiny_lm(tiny_model_dir)
    first = prunekit.search(model, tok, SearchConfig(max_generations=2, work_dir=work, **base))
    assert first.report["search"]["generations"] == 2
    model, tok = tiny_lm(tiny_model_dir)
    resumed = prunekit.search(
        model, tok, SearchConfig(max_generations=4, work_dir=work, resume=True, **base)
    )
    assert _outcome(resumed) == _outcome(whole)
    assert _outcome(resumed)["generations"] == 4


def test_resume_refuses_other_settings(tiny_model_dir, answering, tmp_path):
    import pytest

    from prunekit.errors import PrunekitError

    work = str(tmp_path / "work")
    model, tok = tiny_lm(tiny_model_dir)
    prunekit.search(model, tok, budget="params=0.6", max_generations=1, work_dir=work, **SMALL)
    model, tok = tiny_lm(tiny_model_dir)
    with pytest.raises(PrunekitError, match=r"other settings \(budget\)"):
        prunekit.search(
            model, tok, budget="params=0.5", work_dir=work, resume=True, max_generations=2, **SMALL
        )


def test_drop_only_search_with_final_linear_repair(tiny_model_dir, answering):
    """Levels = keep or drop: the budget forces one drop; the repair map is folded into the
    chosen model after the search (the stitched fitness is unrepaired, the direct one repaired)."""
    model, tok = tiny_lm(tiny_model_dir)
    opts = {**SMALL, "ffn_levels": (1.0,)}
    result = prunekit.search(
        model, tok, budget="params=0.7", max_generations=2, repair="linear", **opts
    )
    best = result.report["search"]["best"]
    assert len(best["dropped"]) == 1 and best["repair"] == "linear"
    assert model.config.num_hidden_layers == 2
    assert best["direct_fitness"] != best["fitness"]  # the repair changed the exported model
    assert result.plan["config"]["repair"] == "linear"
