"""On a real model: continuous batching gives the old generator's greedy HumanEval completions."""

from __future__ import annotations

import os

import pytest
from generation_reference import generate_batched as reference_generate

from prunekit.evaluation import humaneval as he
from prunekit.evaluation.generation import generate_batched
from prunekit.models.registry import is_installed

pytestmark = pytest.mark.integration

if not is_installed("smollm2-135m") and not os.environ.get("PRUNEKIT_REQUIRE_BUILTIN"):
    pytest.skip(
        "smollm2-135m is not installed (prunekit install smollm2-135m)", allow_module_level=True
    )


def test_humaneval_completions_equal_the_requeueing_generator():
    from prunekit.models.loading import load_model

    lm = load_model("smollm2-135m", "float32")
    problems = he.load_problems(3)
    prompts = [he.build_prompt(p, "completion", lm.tokenizer) for p in problems]
    stops = he.stop_sequences("completion")
    kwargs = dict(max_new_tokens=32, batch_size=2, stops=stops, progress=False)
    new, _ = generate_batched(lm.model, lm.tokenizer, prompts, **kwargs)
    old, _ = reference_generate(lm.model, lm.tokenizer, prompts, segment_tokens=16, **kwargs)
    cut = [[he.truncate_at_stops(g.text, stops) for g in per] for per in new]
    assert cut == [[he.truncate_at_stops(g.text, stops) for g in per] for per in old]
    assert any(text.strip() for per in cut for text in per)
