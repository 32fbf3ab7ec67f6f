"""`row_plan` on hand values: its default gives exact per-row counts to every layer, and a layer
whose consumer has no δ keeps its block value (the real consumer map is never called with None).
Mutants these kill: tests/MUTATION.md §8."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.neuroal import consumer_rows, row_plan
from prunekit.allocation.plan import LayerShape, layer_shapes
from prunekit.models.adapters import adapter_for


def _rows_for(name: str) -> tuple[str | None, Callable[[torch.Tensor], torch.Tensor | None]]:
    """Layer a's rows are fed one to one into layer b; b feeds nothing."""
    if name == "a":
        return "b", lambda delta: delta
    return None, lambda delta: None


def test_row_plan_gives_every_layer_exact_row_counts_by_default():
    """Blocks 0.3, 0.7, 0.5 (B = 3); a: 4×10, b: 2×4; δ = [0, 1, 2, 3], λ = 0.1.

    a in blocks 0 and 1 as in test_neuroal_mutants: [0.4, 0.3, 0.3, 0.2], [0.8, 0.7, 0.7, 0.6].
    Every other layer gets its block value as whole row counts: b of block 0: 2 × 1.2 = 2.4 → 2
    weights, 1 per row = 0.25; block 1: 2 × 2.8 = 5.6 → 6, 3 per row = 0.75; block 2 (the last,
    no row step): a 5 of 10 per row, b 2 of 4 per row.
    """
    shapes = {
        f"layers.{i}.{n}": LayerShape(i, n, d_out, d_in)
        for i in (0, 1, 2)
        for n, d_out, d_in in (("a", 4, 10), ("b", 2, 4))
    }
    blocks = torch.tensor([0.3, 0.7, 0.5], dtype=torch.float64)
    delta = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
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
