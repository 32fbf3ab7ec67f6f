"""Small exact checks of the allocation math (values worked out by hand or by brute force), added
for the mutants mutmut found unchecked (tests/MUTATION.md, allocation/)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.alignment import alignment_objective, row_ranks, scorer_prune
from prunekit.allocation.neuroal import row_plan
from prunekit.allocation.owl import outlier_ratio
from prunekit.allocation.plan import AllocationPlan, LayerShape, block_sizes, layer_shapes
from prunekit.allocation.ramps import block_ramp, recentre
from prunekit.calibration.context import RunContext
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import Wanda
from prunekit.models.adapters import adapter_for


def test_an_outlier_must_be_strictly_above_m_times_the_mean():
    """OWL counts scores > M·mean (the reference's `>`): a score equal to it is not an outlier."""
    scores = [torch.tensor([[1.0, 1.0, 1.0, 1.0]]), torch.tensor([[6.0]])]  # mean 2, M·mean 6
    assert outlier_ratio(scores, 3.0) == 0.0
    assert outlier_ratio(scores, 2.9) == pytest.approx(0.2)


def _rows_for(name: str):
    """Toy roles: `a`'s output rows are `b`'s input channels (one to one); `b` feeds the residual."""
    if name == "a":
        return "b", lambda delta: delta
    return None, lambda delta: None


TOY_SHAPES = {
    f"layers.{i}.{n}": LayerShape(i, n, d_out, d_in)
    for i in (0, 1)
    for n, d_out, d_in in (("a", 4, 10), ("b", 2, 4))
}


def test_row_plan_on_hand_values():
    """δ = [0, 1, 2, 3] on a's rows, λ = 0.1, s = 0.5: densities spread 2λ, re-centred, rounded.

    −2λ·minmax(δ) = [0, −1/15, −2/15, −0.2], shifted by 0.6 to mean 0.5: [0.6, 0.533, 0.467, 0.4];
    ×10 inputs = [6, 5.33, 4.67, 4] → floors [6, 5, 4, 4] (19) plus the one weight of the largest
    remainder (row 2): [6, 5, 5, 4] / 10. Every other layer (b: no consumer; block 1: the last
    block) keeps 0.5 in every row, as exact row counts because the pruner counts per row.
    """
    blocks = torch.tensor([0.5, 0.5], dtype=torch.float64)
    deltas = {
        "layers.0.b": torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64),
        "layers.1.b": torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64),  # last block: unused
    }
    plan = row_plan(TOY_SHAPES, blocks, deltas, 0.1, _rows_for, row_wise=True)
    want = {
        "layers.0.a": [0.6, 0.5, 0.5, 0.4],
        "layers.0.b": [0.5, 0.5],
        "layers.1.a": [0.5] * 4,
        "layers.1.b": [0.5, 0.5],
    }
    assert set(plan.rows) == set(want)
    for key, rows in want.items():
        assert plan.rows[key].tolist() == pytest.approx(rows, abs=1e-12), key
        assert plan.layer[key] == pytest.approx(sum(rows) / len(rows), abs=1e-12)


def test_row_plan_skips_lambda_zero_missing_and_misshaped_deltas_and_honours_row_wise():
    """λ = 0, no δ for the consumer, or a δ of the wrong length: the block value everywhere; with
    row_wise False only layers given per-row values get row counts."""
    blocks = torch.tensor([0.3, 0.7], dtype=torch.float64)
    delta = {"layers.0.b": torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)}
    for lam, deltas in ((0.0, delta), (0.1, {}), (0.1, {"layers.0.b": torch.ones(3)})):
        plan = row_plan(TOY_SHAPES, blocks, deltas, lam, _rows_for, row_wise=True)
        assert plan.rows["layers.0.a"].tolist() == pytest.approx([0.3] * 4, abs=1e-12)
        floats = row_plan(TOY_SHAPES, blocks, deltas, lam, _rows_for, row_wise=False)
        assert floats.rows == {}
        assert floats.layer == {
            "layers.0.a": 0.3,
            "layers.0.b": 0.3,
            "layers.1.a": 0.7,
            "layers.1.b": 0.7,
        }
    mixed = row_plan(TOY_SHAPES, blocks, delta, 0.1, _rows_for, row_wise=False)
    assert set(mixed.rows) == {"layers.0.a"}


HAND_SHAPES = {
    "layers.0.a": LayerShape(0, "a", 2, 3),
    "layers.0.b": LayerShape(0, "b", 1, 4),
    "layers.1.a": LayerShape(1, "a", 2, 5),
}


def test_plan_summaries_on_hand_values():
    """Sizes 6, 4 | 10 at 0.5, 0.3 | 0.8: global 12.2/20, blocks 4.2/10 and 8/10, row histogram."""
    plan = AllocationPlan(
        HAND_SHAPES,
        {"layers.0.a": 0.5, "layers.0.b": 0.3, "layers.1.a": 0.8},
        {"layers.0.a": torch.tensor([0.4, 0.6], dtype=torch.float64)},
    )
    assert block_sizes(HAND_SHAPES).tolist() == [10.0, 10.0]
    assert plan.global_sparsity() == pytest.approx(0.61, abs=1e-12)
    assert plan.block_sparsity() == pytest.approx([0.42, 0.8], abs=1e-12)
    hist = plan.row_histogram(bins=4)  # rows: 0.4, 0.6 | 0.3 | 0.8, 0.8
    assert hist["edges"] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert hist["counts"] == [0, 2, 1, 2]
    assert (hist["min"], hist["max"]) == pytest.approx((0.3, 0.8))
    assert hist["std"] == pytest.approx(statistics.stdev([0.4, 0.6, 0.3, 0.8, 0.8]))
    default = plan.row_histogram()
    assert len(default["counts"]) == 50 and len(default["edges"]) == 51


def test_layer_shapes_key_every_linear_by_block_and_name(tiny_llama):
    """Every prunable Linear as `layers.i.name` with its block, name and (d_out, d_in)."""
    shapes = layer_shapes(tiny_llama, adapter_for(tiny_llama))
    assert len(shapes) == 3 * 7
    assert shapes["layers.2.mlp.down_proj"] == LayerShape(2, "mlp.down_proj", 32, 64)
    assert shapes["layers.0.self_attn.k_proj"] == LayerShape(0, "self_attn.k_proj", 16, 32)
    assert shapes["layers.1.mlp.up_proj"].numel == 64 * 32


@pytest.mark.parametrize("target", [0.995, 0.005])
def test_recentre_widens_its_bounds_to_a_target_outside_them(target):
    """A target beyond [0.01, 0.99] is reachable only with every value at it."""
    values = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = recentre(values, torch.tensor([1.0, 2.0, 3.0]), target)
    assert out.tolist() == pytest.approx([target] * 3, abs=1e-12)


def test_a_one_block_ramp_is_the_sparsity_itself():
    """B = 1: no ramp (the formula would divide by B − 1 = 0)."""
    assert block_ramp(1, 0.6, 0.2).tolist() == [0.6]
    assert block_ramp(3, 0.6, 0.2).tolist() == pytest.approx([0.4, 0.6, 0.8])


def test_row_ranks_are_the_inverse_sort_even_past_int16():
    """Rank of each score in its row, ties by position, for a row too long for int16 ranks."""
    g = torch.Generator().manual_seed(0)
    wide = torch.randint(0, 1000, (2, 40_000), generator=g).float()  # many ties
    ranks = row_ranks(wide)
    for r in range(2):
        order = sorted(range(40_000), key=lambda j: (float(wide[r, j]), j))
        want = torch.empty(40_000, dtype=torch.long)
        want[torch.tensor(order)] = torch.arange(40_000)
        assert torch.equal(ranks[r].long(), want)
    small = row_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]]))
    assert small.tolist() == [[2, 0, 3, 1]] and small.dtype == torch.int16


def test_the_bound_stops_a_candidate_only_before_its_last_block():
    """A partial sum reaching the bound (≥, ties included) stops the pass, unless it is complete."""
    model = tiny_model("llama")
    adapter = adapter_for(model)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    run = RunContext(model, adapter, [ids], progress=False)
    prune = scorer_prune(Wanda(), UNSTRUCTURED, lambda *_: 0.5)

    def objective(bound: float):
        """M(D) of the Wanda-50% candidate under `bound`."""
        return alignment_objective(run, prune, Wanda.needs, bound=bound)

    full = objective(math.inf)
    first = sum(v for k, v in full.terms.items() if k.startswith("layers.0."))
    tie = objective(first)  # block 0 alone reaches it exactly
    assert (tie.complete, tie.blocks_done, tie.objective) == (False, 1, first)
    last = objective(full.objective)  # reached only by the last block: the candidate is complete
    assert (last.complete, last.blocks_done, last.objective) == (True, 3, full.objective)
