"""NeuroAL's helpers (not the search itself) on hand values: the λ grid at high sparsity, row
targets from a signed δ and their block's own sparsity, the consumer map of a grouped-query model,
the search log's fields and its orders. Mutants these kill: tests/MUTATION.md §5."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.alignment import AlignmentResult
from prunekit.allocation.neuroal import (
    COARSE_BLOCK_GRID,
    SearchLog,
    _order,
    _sorted,
    block_grid,
    consumer_rows,
    row_plan,
    row_sparsity,
)
from prunekit.allocation.plan import LayerShape, layer_shapes
from prunekit.models.adapters import adapter_for

FULL = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.12, 0.15, 0.20, 0.25)


def test_block_grid_drops_only_0_25_and_only_from_sparsity_0_8_on():
    """The published grid; 0.25 would clip hard at s ≥ 0.8 (0.8 included), nothing else goes."""
    assert block_grid(0.79) == FULL
    assert block_grid(0.8) == FULL[:-1]
    assert block_grid(0.95) == FULL[:-1]
    assert block_grid(0.8, COARSE_BLOCK_GRID) == (0.02, 0.05, 0.08, 0.12, 0.20)


def test_row_sparsity_follows_the_signed_delta():
    """δ = a_dense − a_sparse may be negative: −2 keeps the fewest weights, not as many as +2.

    minmax([−2, 0, 2]) = [0, ½, 1]; −2λ·that = [0, −0.1, −0.2] (λ = 0.1); shifted by +0.6 to the
    layer's 0.5: [0.6, 0.5, 0.4].
    """
    out = row_sparsity(torch.tensor([-2.0, 0.0, 2.0], dtype=torch.float64), 0.5, 0.1)
    assert out.tolist() == pytest.approx([0.6, 0.5, 0.4], abs=1e-12)


def _rows_for(name: str):
    if name == "a":
        return "b", lambda delta: delta
    return None, lambda delta: None


def _three_blocks() -> tuple[dict[str, LayerShape], torch.Tensor, torch.Tensor]:
    """Layers a (4×10) and b (2×4) in 3 blocks at 0.3, 0.7, 0.5; δ = [0, 1, 2, 3] for a's rows."""
    shapes = {
        f"layers.{i}.{n}": LayerShape(i, n, d_out, d_in)
        for i in (0, 1, 2)
        for n, d_out, d_in in (("a", 4, 10), ("b", 2, 4))
    }
    blocks = torch.tensor([0.3, 0.7, 0.5], dtype=torch.float64)
    return shapes, blocks, torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)


def test_row_plan_recentres_each_layer_to_its_own_blocks_sparsity():
    """Blocks at 0.3 and 0.7 (B = 3, so block 1 is not the last): δ = [0, 1, 2, 3], λ = 0.1.

    −2λ·minmax(δ) = [0, −1/15, −2/15, −0.2], mean −0.1. Block 0 (0.3): +0.4 → [0.4, 0.333, 0.267,
    0.2] × 10 inputs → floors [4, 3, 2, 2] + the largest remainder (row 2) = [4, 3, 3, 2] / 10.
    Block 1 (0.7): +0.8 → [8, 7.33, 6.67, 6] → [8, 7, 7, 6] / 10. Not the 0.5 mean of the blocks.
    """
    shapes, blocks, delta = _three_blocks()
    deltas = {"layers.0.b": delta, "layers.1.b": delta}
    plan = row_plan(shapes, blocks, deltas, 0.1, _rows_for, row_wise=False)
    assert set(plan.rows) == {"layers.0.a", "layers.1.a"}
    assert plan.rows["layers.0.a"].tolist() == pytest.approx([0.4, 0.3, 0.3, 0.2], abs=1e-12)
    assert plan.rows["layers.1.a"].tolist() == pytest.approx([0.8, 0.7, 0.7, 0.6], abs=1e-12)


def test_row_plan_gives_every_layer_exact_row_counts_by_default():
    """Blocks 0.3, 0.7, 0.5 (B = 3); a: 4×10, b: 2×4; δ = [0, 1, 2, 3], λ = 0.1.

    a in blocks 0 and 1 as in the test above: [0.4, 0.3, 0.3, 0.2], [0.8, 0.7, 0.7, 0.6].
    Every other layer gets its block value as whole row counts: b of block 0: 2 × 1.2 = 2.4 → 2
    weights, 1 per row = 0.25; block 1: 2 × 2.8 = 5.6 → 6, 3 per row = 0.75; block 2 (the last,
    no row step): a 5 of 10 per row, b 2 of 4 per row.
    """
    shapes, blocks, delta = _three_blocks()
    plan = row_plan(shapes, blocks, {"layers.0.b": delta, "layers.1.b": delta}, 0.1, _rows_for)
    want = {
        "layers.0.a": [0.4, 0.3, 0.3, 0.2],
        "layers.0.b": [0.25, 0.25],
        "layers.1.a": [0.8, 0.7, 0.7, 0.6],
        "layers.1.b": [0.75, 0.75],
        "layers.2.a": [0.5] * 4,
        "layers.2.b": [0.5, 0.5],
    }
    assert set(plan.rows) == set(want)
    for key, rows in want.items():
        assert plan.rows[key].tolist() == pytest.approx(rows, abs=1e-12), key


def test_row_plan_leaves_layers_without_a_consumer_delta_at_their_block_value():
    """Tiny llama, δ only for block 0's consumers (o_proj 32, gate_proj 32, down_proj 64 inputs).

    Block 0's q/k/v/o/gate/up get row targets (down_proj feeds the residual: none); blocks 1 and 2
    keep their block values as layer floats (row_wise off). q_proj's δ = 0..31 one to one: its
    row sparsity falls with δ (larger loss, denser row) and its 1,024 weights keep the mean 0.5.
    """
    model = tiny_model("llama")
    adapter = adapter_for(model)
    shapes = layer_shapes(model, adapter)
    blocks = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)
    deltas = {
        "layers.0.self_attn.o_proj": torch.arange(32, dtype=torch.float64),
        "layers.0.mlp.gate_proj": torch.arange(32, dtype=torch.float64),
        "layers.0.mlp.down_proj": torch.arange(64, dtype=torch.float64),
    }
    plan = row_plan(shapes, blocks, deltas, 0.1, consumer_rows(model, adapter), row_wise=False)
    block0 = ("q_proj", "k_proj", "v_proj", "o_proj")
    want = {f"layers.0.self_attn.{n}" for n in block0}
    want |= {"layers.0.mlp.gate_proj", "layers.0.mlp.up_proj"}
    assert set(plan.rows) == want
    for key, s in shapes.items():
        if s.block > 0:
            assert plan.layer[key] == float(blocks[s.block]), key
    q = plan.rows["layers.0.self_attn.q_proj"]
    assert bool((q[1:] <= q[:-1]).all()) and q[0] > q[-1]
    assert float(q.sum()) * 32 == pytest.approx(512, abs=1e-9)


def test_consumer_rows_of_a_grouped_query_model_by_hand():
    """Tiny llama: 4 query heads over 2 kv heads, head_dim 8, hidden 32, MLP width 64.

    q/k/v feed o_proj, o_proj feeds the MLP input, gate/up feed down_proj, down_proj the residual.
    A k/v row of kv head h takes the mean δ of its two query heads' o_proj channels: for δ = 0..31
    (channel j of head g is 8g + j) that is j + 4 for h = 0 (heads 0, 1) and j + 20 for h = 1.
    """
    model = tiny_model("llama")
    rows_for = consumer_rows(model, adapter_for(model))
    attn = torch.arange(32, dtype=torch.float64)
    mlp = torch.arange(64, dtype=torch.float64)
    consumer, to_rows = rows_for("self_attn.k_proj")
    assert consumer == "self_attn.o_proj"
    assert to_rows(attn).tolist() == [j + 4.0 for j in range(8)] + [j + 20.0 for j in range(8)]
    consumer, to_rows = rows_for("self_attn.v_proj")
    assert consumer == "self_attn.o_proj" and to_rows(attn).shape == (16,)
    consumer, to_rows = rows_for("self_attn.q_proj")
    assert consumer == "self_attn.o_proj" and to_rows(attn).tolist() == attn.tolist()
    consumer, to_rows = rows_for("self_attn.o_proj")
    assert consumer == "mlp.gate_proj" and to_rows(attn).tolist() == attn.tolist()
    for name in ("mlp.gate_proj", "mlp.up_proj"):
        consumer, to_rows = rows_for(name)
        assert consumer == "mlp.down_proj" and to_rows(mlp).tolist() == mlp.tolist()
    assert rows_for("mlp.down_proj")[0] is None


def test_search_log_records_every_field_and_sorts_by_lambda():
    """A stopped candidate keeps its lower bound, complete=False and the blocks it got through;
    a note only where one is given; `_sorted` orders by λ, whatever the evaluation order."""
    log = SearchLog()
    log.add(0.1, AlignmentResult(0.75, True, 3), "block-step result")
    log.add(0.05, AlignmentResult(1.5, False, 2))
    assert log.chosen is None
    stopped = {"lambda": 0.05, "objective": 1.5, "complete": False, "blocks_evaluated": 2}
    done = {
        "lambda": 0.1,
        "objective": 0.75,
        "complete": True,
        "blocks_evaluated": 3,
        "note": "block-step result",
    }
    assert log.candidates == [done, stopped]
    assert _sorted(log) == [stopped, done]


def test_order_starts_at_the_likely_winner_then_goes_outwards_lower_first_on_ties():
    assert _order((1.0, 3.0, 2.0, 0.0, 4.0), 2.0) == [2.0, 1.0, 3.0, 0.0, 4.0]
    assert _order((0.5, 4.0, 1.0), 0.0) == [0.5, 1.0, 4.0]
