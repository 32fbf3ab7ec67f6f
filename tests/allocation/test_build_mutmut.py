"""What `build_allocation` hands NeuroAL's search: the searcher, the search windows and every
option as `SearchSettings` (the search itself is replaced by a recorder, so each test is a few ms
after the tiny model). Mutants these kill: tests/MUTATION.md §8."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.build import build_allocation, check_allocation
from prunekit.allocation.neuroal import SearchSettings
from prunekit.allocation.plan import AllocationPlan, make_plan
from prunekit.calibration.context import RunContext
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import Magnitude, Pruner, SparseGPT, Wanda
from prunekit.models.adapters import adapter_for

# the published grids, written out (not imported) so that a changed constant fails here too
FULL_BLOCK = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.12, 0.15, 0.20, 0.25)
FULL_ROW = (0.0, *FULL_BLOCK)
# two calibration batches of different sizes (3 and 2 windows of 4 tokens): window w is all w
IDS = torch.arange(5).repeat_interleave(4).view(5, 4)
BATCHES = [IDS[:3], IDS[3:]]


def _record(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the search by a recorder of its arguments; it returns the uniform plan."""
    seen: dict[str, Any] = {}

    def fake(run, pruner, pattern, shapes, sparsity, settings, weights):
        seen.update(run=run, searcher=pruner, sparsity=sparsity, settings=settings)
        seen.update(weights=weights)
        return make_plan(shapes, [sparsity] * 3), {}

    monkeypatch.setattr("prunekit.allocation.build.neuroal_search", fake)
    return seen


def _build(options: dict, pruner: Pruner, sparsity: float = 0.6) -> tuple[AllocationPlan, dict]:
    """check_allocation then build_allocation on a tiny llama (3 blocks) with BATCHES."""
    model = tiny_model("llama")
    run = RunContext(model, adapter_for(model), BATCHES, progress=False)
    full = check_allocation("neuroal", options, UNSTRUCTURED)
    return build_allocation("neuroal", full, run, pruner, UNSTRUCTURED, sparsity)


def _windows(run: RunContext) -> list[list[int]]:
    """The search batches as lists of window ids (window w holds token id w)."""
    return [b[:, 0].tolist() for b in run.batches]


def test_defaults_reach_the_search_as_the_published_settings(monkeypatch: pytest.MonkeyPatch):
    """Wanda searches for itself; up to 8 windows (5 here) cut at the first batch's size (3)."""
    seen = _record(monkeypatch)
    pruner = Wanda()
    _, report = _build({}, pruner)
    assert seen["searcher"] is pruner and seen["sparsity"] == 0.6
    assert _windows(seen["run"]) == [[0, 1, 2], [3, 4]] and seen["weights"] is None
    assert seen["settings"] == SearchSettings(
        row_step=True,
        row_wise=True,
        block_lambdas=FULL_BLOCK,
        row_lambdas=FULL_ROW,
        bound=True,
        fast_masks=True,
        dense_reference="stream",
    )
    assert seen["settings"].bound is True and seen["settings"].fast_masks is True
    assert report["search"] == {"search_method": "wanda", "grid": "full"}


def test_every_given_option_reaches_the_search(monkeypatch: pytest.MonkeyPatch):
    """Off-default values of every option: each one is what the search gets, none a default."""
    seen = _record(monkeypatch)
    options = {
        "samples": 3,
        "row_step": False,
        "search_method": "magnitude",
        "block_lambdas": [0.05, 0.3],
        "row_lambdas": [0.0, 0.2],
        "bound": False,
        "fast_masks": False,
        "dense_reference": "cached",
    }
    _, report = _build(options, Wanda())
    assert type(seen["searcher"]) is Magnitude
    assert _windows(seen["run"]) == [[0, 1, 2]]
    assert seen["settings"] == SearchSettings(
        row_step=False,
        row_wise=True,
        block_lambdas=(0.05, 0.3),
        row_lambdas=(0.0, 0.2),
        bound=False,
        fast_masks=False,
        dense_reference="cached",
    )
    assert report["search"] == {"search_method": "magnitude", "grid": "full"}


def test_the_coarse_grid_gives_its_own_block_and_row_candidates(monkeypatch: pytest.MonkeyPatch):
    """grid=coarse: the 5 + 5 coarse candidates, not the published 14 + 15."""
    seen = _record(monkeypatch)
    _, report = _build({"grid": "coarse"}, Wanda())
    assert seen["settings"].block_lambdas == (0.02, 0.05, 0.08, 0.12, 0.20)
    assert seen["settings"].row_lambdas == (0.0, 0.04, 0.08, 0.15, 0.25)
    assert report["search"]["grid"] == "coarse"


def test_the_full_grid_loses_0_25_at_sparsity_0_8(monkeypatch: pytest.MonkeyPatch):
    """s = 0.8: the block candidates are the published grid without 0.25; the row ones keep it."""
    seen = _record(monkeypatch)
    _build({}, Wanda(), sparsity=0.8)
    assert seen["settings"].block_lambdas == FULL_BLOCK[:-1]
    assert seen["settings"].row_lambdas == FULL_ROW


def test_a_chosen_block_lambda_wins_over_the_list_and_sparsegpt_gets_layer_values(
    monkeypatch: pytest.MonkeyPatch,
):
    """block_lambda (e.g. from another scorer's search) is the only block candidate, even with a
    block_lambdas list; SparseGPT (no per-row counts) searches through Wanda with row_wise off."""
    seen = _record(monkeypatch)
    _, report = _build({"block_lambda": 0.1, "block_lambdas": [0.05, 0.2]}, SparseGPT())
    assert seen["settings"].block_lambdas == (0.1,)
    assert seen["settings"].row_wise is False
    assert type(seen["searcher"]) is Wanda
    assert report["search"]["search_method"] == "wanda"


def test_a_pruner_that_searches_for_itself_is_used_as_configured(monkeypatch: pytest.MonkeyPatch):
    """search_method = the pruner's own name: that instance (blocksize 64), not a default one."""
    seen = _record(monkeypatch)
    pruner = SparseGPT(blocksize=64)
    _build({"search_method": "sparsegpt"}, pruner)
    assert seen["searcher"] is pruner and seen["searcher"].blocksize == 64
