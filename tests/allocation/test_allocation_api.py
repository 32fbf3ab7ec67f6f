"""End to end on tiny random models: every allocation hits the target; NeuroAL records its search."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.alignment import alignment_objective, ranked_prune, score_ranks
from prunekit.allocation.neuroal import (
    BLOCK_GRID,
    COARSE_BLOCK_GRID,
    COARSE_ROW_GRID,
    ROW_GRID,
    consumer_rows,
    row_plan,
)
from prunekit.allocation.plan import layer_shapes, make_plan
from prunekit.api import prune
from prunekit.calibration.context import RunContext
from prunekit.errors import PrunekitError
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import SparseGPT, Wanda
from prunekit.models.adapters import adapter_for
from prunekit.reports.allocation_plots import write_allocation_plots

IDS = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(0))
SMALL_GRID = {"block_lambdas": [0.05, 0.2], "row_lambdas": [0.0, 0.1]}


def run(arch="qwen2", **kw):
    return prune(tiny_model(arch), None, calib=IDS, seq_len=24, batch_size=4, progress=False, **kw)


def test_neuroal_end_to_end_hits_target_and_records_every_candidate(tmp_path):
    t0 = time.perf_counter()
    result = run(
        method="wanda", sparsity=0.6, allocation="neuroal", allocation_options={"samples": 4}
    )
    assert time.perf_counter() - t0 < 60
    rep = result.report
    assert rep["method"]["allocation"] == "neuroal"
    assert abs(rep["sparsity"]["achieved"] - 0.6) < 1e-3
    search = rep["allocation"]["search"]
    assert search["search_windows"] == 4
    block, row = search["block_step"], search["row_step"]
    assert [c["lambda"] for c in block["candidates"]] == list(BLOCK_GRID)
    assert [c["lambda"] for c in row["candidates"]] == list(ROW_GRID)
    assert block["chosen_lambda"] in BLOCK_GRID and row["chosen_lambda"] in ROW_GRID
    complete = [c for c in block["candidates"] + row["candidates"] if c["complete"]]
    assert search["objective"] == pytest.approx(min(c["objective"] for c in complete))
    # a candidate stopped early was provably no better than the winner
    assert all(c["objective"] >= search["objective"] for c in block["candidates"])
    assert rep["timings_s"]["allocation"] >= search["search_s"]
    assert write_allocation_plots(rep["allocation"], tmp_path).stat().st_size > 0


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("allocation", ["uniform", "owl", "neuroal"])
def test_every_allocation_hits_an_awkward_target(method, allocation):
    opts = {**SMALL_GRID, "samples": 4} if allocation == "neuroal" else None
    rep = run(method=method, sparsity=0.55, allocation=allocation, allocation_options=opts).report
    assert abs(rep["sparsity"]["achieved"] - 0.55) < 1e-3, rep["sparsity"]["achieved"]
    assert rep["allocation"]["planned_sparsity"] == pytest.approx(0.55, abs=1e-3)
    if allocation != "uniform":
        assert max(rep["allocation"]["block_sparsity"]) > min(rep["allocation"]["block_sparsity"])
    if allocation == "neuroal" and method == "sparsegpt":
        assert [c["lambda"] for c in rep["allocation"]["search"]["row_step"]["candidates"]] == [
            0.0,
            0.1,
        ]
        assert rep["allocation"]["search"]["search_method"] == "wanda"


def test_owl_parameters_are_used():
    flat = run(method="wanda", sparsity=0.5, allocation="owl", allocation_options={"lambda": 0.0})
    wide = run(
        method="wanda", sparsity=0.5, allocation="owl", allocation_options={"lambda": 0.2, "m": 3}
    )
    assert max(flat.report["allocation"]["block_sparsity"]) == pytest.approx(0.5)
    spread = wide.report["allocation"]["block_sparsity"]
    assert max(spread) - min(spread) == pytest.approx(0.4, abs=1 / 32)  # whole weights per row


def test_uniform_wanda_masks_equal_the_plain_scalar_path():
    a, b = tiny_model("llama"), tiny_model("llama")
    prune(
        a, None, method="wanda", sparsity=0.5, calib=IDS, seq_len=24, batch_size=4, progress=False
    )
    prune_model(
        b, adapter_for(b), Wanda(), lambda *_: 0.5, UNSTRUCTURED, list(IDS.split(4)), progress=False
    )
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"allocation": "owl", "pattern": "2:4"}, "N:M pattern"),
        ({"allocation": "neuroal", "pattern": "4:8"}, "N:M pattern"),
        ({"allocation": "bogus", "sparsity": 0.5}, "allocation 'bogus' is not one of"),
        (
            {"allocation": "owl", "sparsity": 0.5, "allocation_options": {"lamda": 1}},
            "unknown option",
        ),
        (
            {"allocation": "neuroal", "sparsity": 0.5, "allocation_options": {"samples": 0}},
            "search window",
        ),
        (
            {"allocation": "neuroal", "sparsity": 0.5, "allocation_options": {"grid": "fine"}},
            "unknown NeuroAL grid",
        ),
    ],
)
def test_bad_allocation_input_is_one_line_error(kwargs, needle):
    with pytest.raises(PrunekitError, match=needle) as err:
        run(method="wanda", **kwargs)
    assert "\n" not in str(err.value)


def test_nm_with_uniform_allocation_still_works():
    rep = run(method="wanda", pattern="2:4").report
    assert rep["sparsity"]["achieved"] == pytest.approx(0.5)


def test_a_given_block_lambda_with_the_row_step_evaluates_it_once_for_the_row_deltas():
    opts = {"block_lambda": 0.1, "samples": 4, "row_lambdas": [0.0, 0.3]}
    rep = run(
        method="sparsegpt", sparsity=0.6, allocation="neuroal", allocation_options=opts
    ).report
    search = rep["allocation"]["search"]
    assert [c["lambda"] for c in search["block_step"]["candidates"]] == [0.1]
    assert [c["lambda"] for c in search["row_step"]["candidates"]] == [0.0, 0.3]
    assert abs(rep["sparsity"]["achieved"] - 0.6) < 1e-3


def test_a_given_block_lambda_skips_the_search_for_sparsegpt():
    opts = {"block_lambda": 0.1, "samples": 4, "row_step": False}
    rep = run(
        method="sparsegpt", sparsity=0.6, allocation="neuroal", allocation_options=opts
    ).report
    search = rep["allocation"]["search"]
    assert search["block_step"] == {"chosen_lambda": 0.1, "candidates": []}
    assert search["objective"] is None
    blocks = rep["allocation"]["block_sparsity"]
    assert blocks[-1] - blocks[0] == pytest.approx(0.2, abs=1e-6)
    assert abs(rep["sparsity"]["achieved"] - 0.6) < 1e-3


def test_exact_search_masks_rescore_each_candidate_and_still_hit_the_target():
    opts = {**SMALL_GRID, "samples": 4, "fast_masks": False, "bound": False}
    rep = run(method="wanda", sparsity=0.7, allocation="neuroal", allocation_options=opts).report
    search = rep["allocation"]["search"]
    assert search["fast_masks"] is False
    assert all(c["complete"] for c in search["block_step"]["candidates"])
    assert abs(rep["sparsity"]["achieved"] - 0.7) < 1e-3


def test_sparsegpt_can_be_the_search_scorer_itself():
    opts = {**SMALL_GRID, "samples": 4, "search_method": "sparsegpt"}
    rep = run(
        method="sparsegpt", sparsity=0.6, allocation="neuroal", allocation_options=opts
    ).report
    search = rep["allocation"]["search"]
    assert search["search_method"] == "sparsegpt" and search["fast_masks"] is False
    assert abs(rep["sparsity"]["achieved"] - 0.6) < 1e-3


def test_coarse_grid_searches_exactly_its_candidates_and_records_the_grid():
    opts = {"samples": 4, "grid": "coarse"}
    rep = run(method="wanda", sparsity=0.6, allocation="neuroal", allocation_options=opts).report
    search = rep["allocation"]["search"]
    assert search["grid"] == "coarse"
    assert [c["lambda"] for c in search["block_step"]["candidates"]] == list(COARSE_BLOCK_GRID)
    assert [c["lambda"] for c in search["row_step"]["candidates"]] == list(COARSE_ROW_GRID)
    assert abs(rep["sparsity"]["achieved"] - 0.6) < 1e-3


def test_sparsegpt_honours_the_row_step_per_row_counts_exactly():
    """Row targets from the row step (δ from a real alignment pass) reach SparseGPT's masks exactly."""
    model = tiny_model("qwen2")
    adapter = adapter_for(model)
    shapes = layer_shapes(model, adapter)
    blocks = torch.linspace(0.5, 0.7, 1 + max(s.block for s in shapes.values())).double()
    run = RunContext(model, adapter, [IDS[:4]], progress=False)
    ranks = score_ranks(run, Wanda())
    dense_plan = make_plan(shapes, blocks, row_wise=False)
    res = alignment_objective(run, ranked_prune(ranks, dense_plan.target))
    plan = row_plan(shapes, blocks, res.deltas, 0.2, consumer_rows(model, adapter), row_wise=False)
    assert plan.rows and not all(k in plan.rows for k in shapes)  # rows only where δ exists
    batches = list(IDS.split(4))
    records = prune_model(model, adapter, SparseGPT(), plan.target, UNSTRUCTURED, batches)
    layers = {
        f"layers.{i}.{n}": lin
        for i, b in enumerate(adapter.layers(model))
        for n, lin in adapter.linears(b).items()
    }
    for key, rows in plan.rows.items():
        assert rows.std() > 0, key
        zeros = (layers[key].weight == 0).sum(1)
        assert torch.equal(zeros, torch.round(rows * shapes[key].d_in).long()), key
    assert set(records) == set(shapes)
