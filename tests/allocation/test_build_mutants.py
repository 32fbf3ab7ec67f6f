"""Choosing an allocation: the documented defaults, each option's bounds at the bound, and the
uniform plan's report by hand (exact per-row counts move the planned sparsity off the target).
Mutants these kill: tests/MUTATION.md §5."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.build import build_allocation, check_allocation
from prunekit.calibration.context import RunContext
from prunekit.errors import PrunekitError
from prunekit.methods.patterns import UNSTRUCTURED, parse_pattern
from prunekit.methods.pruners import Wanda
from prunekit.models.adapters import adapter_for


def test_defaults_are_the_documented_ones():
    """OWL: M = 5, λ = 0.08 (the paper's, and --help's); NeuroAL: 8 search windows, the published
    grid, row step, bound and fast masks on, a^dense from the candidate's own stream."""
    assert check_allocation("uniform", None, UNSTRUCTURED) == {}
    assert check_allocation("owl", None, UNSTRUCTURED) == {"m": 5.0, "lambda": 0.08}
    assert check_allocation("neuroal", {}, UNSTRUCTURED) == {
        "samples": 8,
        "row_step": True,
        "search_method": "auto",
        "grid": "full",
        "block_lambda": None,
        "block_lambdas": None,
        "row_lambdas": None,
        "bound": True,
        "fast_masks": True,
        "dense_reference": "stream",
    }


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("owl", {"m": 1e-9}),
        ("owl", {"lambda": 0.0}),
        ("owl", {"lambda": 0.499}),
        ("neuroal", {"samples": 1}),
        ("neuroal", {"search_method": "magnitude", "dense_reference": "cached"}),
    ],
)
def test_options_at_their_bounds_are_valid(name, options):
    assert check_allocation(name, options, UNSTRUCTURED).items() >= options.items()


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("owl", {"m": 0.0}, "OWL needs M > 0"),
        ("owl", {"m": -1.0}, "OWL needs M > 0"),
        ("owl", {"lambda": 0.5}, "0 ≤ λ < 0.5"),
        ("owl", {"lambda": -0.01}, "0 ≤ λ < 0.5"),
        ("neuroal", {"samples": 0}, "at least 1 search window"),
        ("neuroal", {"search_method": "bogus"}, "unknown method 'bogus'"),
        ("neuroal", {"dense_reference": "model"}, "unknown NeuroAL dense reference 'model'"),
    ],
)
def test_options_past_their_bounds_fail_before_any_work(name, options, needle):
    with pytest.raises(PrunekitError, match=needle):
        check_allocation(name, options, UNSTRUCTURED)


def _run():
    model = tiny_model("llama")
    return RunContext(model, adapter_for(model), [torch.zeros(1, 4, dtype=torch.long)])


def test_uniform_report_plans_whole_weights_by_hand():
    """Tiny llama at 0.55: per block q, o 32×32; k, v 16×32; gate, up 64×32; down 32×64 = 9,216
    weights. Exact row counts prune round(numel·0.55) of each: 563 + 282 + 282 + 563 + 3·1,126 =
    5,068 per block, so the plan (and the report) says 5,068 / 9,216, not 0.55."""
    plan, report = build_allocation("uniform", {}, _run(), Wanda(), UNSTRUCTURED, 0.55)
    by_hand = 5068 / 9216
    assert report["planned_sparsity"] == pytest.approx(by_hand, abs=1e-12)
    assert plan.global_sparsity() == pytest.approx(by_hand, abs=1e-12)
    assert report["block_sparsity"] == pytest.approx([by_hand] * 3, abs=1e-12)
    assert plan.layer["layers.1.self_attn.k_proj"] == pytest.approx(282 / 512, abs=1e-12)
    assert report["name"] == "uniform" and report["options"] == {}


def test_an_nm_pattern_gets_layer_values_not_row_counts():
    """N:M fixes n of every m weights: no per-row count may reach the masks, even for Wanda."""
    plan, report = build_allocation("uniform", {}, _run(), Wanda(), parse_pattern("2:4"), 0.5)
    assert plan.rows == {}
    assert set(plan.layer.values()) == {0.5} and report["planned_sparsity"] == 0.5
