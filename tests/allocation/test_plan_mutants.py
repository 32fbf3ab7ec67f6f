"""A plan's layer values are the exact per-row counts it will prune, not the block value they were
rounded from. Mutants this kills: tests/MUTATION.md §5."""

from __future__ import annotations

import pytest
import torch

from prunekit.allocation.plan import LayerShape, make_plan

SHAPES = {"layers.0.a": LayerShape(0, "a", 7, 11), "layers.0.b": LayerShape(0, "b", 5, 13)}
ROWS_B = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6], dtype=torch.float64)


def test_layer_values_are_the_mean_of_the_whole_weight_rows_by_hand():
    """a: 7 rows × 11 inputs at 0.4 = 30.8 → 31 weights. b (own rows): ×13 = [1.3, 2.6, 3.9, 5.2,
    7.8] = 20.8 → 21: floors [1, 2, 3, 5, 7] plus one each for the largest remainders (0.9, 0.8,
    0.6: rows 2, 4, 1) = [1, 3, 4, 5, 8]. The block value 0.4 is neither layer's."""
    plan = make_plan(SHAPES, [0.4], {"layers.0.b": ROWS_B})
    assert (plan.rows["layers.0.b"] * 13).tolist() == pytest.approx([1, 3, 4, 5, 8], abs=1e-9)
    assert plan.layer["layers.0.a"] == pytest.approx(31 / 77, abs=1e-12)
    assert plan.layer["layers.0.b"] == pytest.approx(21 / 65, abs=1e-12)
    assert plan.global_sparsity() == pytest.approx(52 / 142, abs=1e-12)
    assert plan.block_sparsity() == pytest.approx([52 / 142], abs=1e-12)
    floats = make_plan(SHAPES, [0.4], {"layers.0.b": ROWS_B}, row_wise=False)
    assert floats.layer == pytest.approx({"layers.0.a": 0.4, "layers.0.b": 21 / 65}, abs=1e-12)
