"""One registry mechanism: methods, allocations, recipe steps, importances, benchmarks, families
and built-in models are all `config.Registry`s, and an unknown name is one line listing the
valid ones."""

from __future__ import annotations

import pytest

from prunekit.allocation.options import ALLOCATIONS
from prunekit.config import Registry
from prunekit.errors import PrunekitError
from prunekit.evaluation.benchmarks import REGISTRY as BENCHMARKS
from prunekit.methods.pruners import PRUNERS
from prunekit.models.adapters import ADAPTERS, FAMILIES, adapter_for
from prunekit.models.registry import BUILTIN_MODELS
from prunekit.recipes.schema import STEPS, STRUCTURAL
from prunekit.structural.importance import REGISTRY as IMPORTANCES

ALL = {
    "method": (PRUNERS, "wanda"),
    "allocation": (ALLOCATIONS, "owl"),
    "step": (STEPS, "depth"),
    "importance": (IMPORTANCES, "fused"),
    "benchmark": (BENCHMARKS, "humaneval"),
    "family": (FAMILIES, "qwen2"),
    "built-in model": (BUILTIN_MODELS, "smollm2-135m"),
}


@pytest.mark.parametrize("kind", ALL)
def test_every_named_choice_is_a_registry(kind):
    registry, known = ALL[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    assert registry.lookup(known) is registry[known]
    with pytest.raises(PrunekitError) as err:
        registry.lookup("no-such")
    assert str(err.value) == (f"unknown {kind} 'no-such'; choose one of: {', '.join(registry)}")


def test_families_keep_their_order_and_model_types():
    assert tuple(FAMILIES.values()) == ADAPTERS
    assert [a.family for a in ADAPTERS] == list(FAMILIES)
    assert adapter_for("gemma3_text") is FAMILIES["gemma3"]


def test_steps_name_themselves_and_search_plan_is_structural():
    assert all(STEPS[name].name == name for name in STEPS)
    assert set(STRUCTURAL) == {"search_plan", "vocabulary", "depth", "width", "structured"}
