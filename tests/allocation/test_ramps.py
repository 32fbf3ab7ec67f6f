"""Allocation invariants: mean preserved (size-weighted), bounds respected, ramps monotone."""

from __future__ import annotations

import pytest
import torch

from prunekit.allocation.neuroal import ramp_sparsity, row_sparsity
from prunekit.allocation.owl import outlier_ratio, owl_block_sparsity
from prunekit.allocation.plan import LayerShape, make_plan
from prunekit.allocation.ramps import block_ramp, exact_row_targets, minmax, recentre


def weighted_mean(v: torch.Tensor, w: torch.Tensor) -> float:
    return float((v * w).sum() / w.sum())


@pytest.mark.parametrize("target", [0.05, 0.5, 0.7, 0.97])
def test_recentre_keeps_weighted_mean_and_bounds_after_clipping(target):
    g = torch.Generator().manual_seed(0)
    values = (
        torch.rand(40, generator=g, dtype=torch.float64) * 1.6 - 0.3
    )  # far outside [0.01, 0.99]
    weights = torch.rand(40, generator=g, dtype=torch.float64) + 0.1
    out = recentre(values, weights, target)
    assert weighted_mean(out, weights) == pytest.approx(target, abs=1e-9)
    assert out.min() >= 0.01 - 1e-12 and out.max() <= 0.99 + 1e-12
    assert ((out == 0.01) | (out == 0.99)).any()  # clipping really happened
    order = torch.argsort(values)
    assert (out[order].diff() >= -1e-12).all()  # order kept


def test_block_ramp_is_monotone_with_mean_s_and_spread_2_lambda():
    ramp = block_ramp(24, 0.6, 0.1)
    assert (ramp.diff() > 0).all()
    assert float(ramp.mean()) == pytest.approx(0.6)
    assert float(ramp[-1] - ramp[0]) == pytest.approx(0.2)


@pytest.mark.parametrize(("s", "lam"), [(0.7, 0.25), (0.9, 0.2), (0.1, 0.15)])
def test_clipped_ramp_stays_monotone_in_bounds_and_recentred(s, lam):
    sizes = torch.tensor([3.0, 1.0, 2.0, 5.0, 1.0, 4.0, 2.0], dtype=torch.float64)
    out = ramp_sparsity(len(sizes), s, lam, sizes)
    assert (out.diff() >= -1e-12).all()
    assert out.min() >= 0.01 - 1e-12 and out.max() <= 0.99 + 1e-12
    assert weighted_mean(out, sizes) == pytest.approx(s, abs=1e-9)


def test_minmax_handles_constant_vectors():
    assert minmax(torch.tensor([2.0, 2.0])).tolist() == [0.0, 0.0]
    assert minmax(torch.tensor([1.0, 3.0, 2.0])).tolist() == [0.0, 1.0, 0.5]


def test_exact_row_targets_hit_the_layer_count_with_integer_rows():
    g = torch.Generator().manual_seed(1)
    s = torch.rand(37, generator=g, dtype=torch.float64) * 0.8 + 0.1
    d_in = 13
    out = exact_row_targets(s, d_in)
    k = out * d_in
    assert torch.allclose(k, k.round(), atol=1e-9)
    assert int(k.round().sum()) == round(float(s.sum() * d_in))
    assert ((k - s * d_in).abs() < 1 + 1e-9).all()


def test_row_sparsity_recentres_and_gives_more_weights_to_rows_with_larger_delta():
    delta = torch.tensor([0.0, 5.0, 1.0, 3.0, 10.0], dtype=torch.float64)
    out = row_sparsity(delta, 0.6, 0.1)
    assert float(out.mean()) == pytest.approx(0.6, abs=1e-9)
    order = torch.argsort(delta)
    assert (out[order].diff() <= 1e-12).all()
    assert float(out[0] - out[4]) == pytest.approx(0.2)  # density spread 2λ, nothing clipped
    huge = row_sparsity(delta, 0.95, 0.25)
    assert float(huge.mean()) == pytest.approx(0.95, abs=1e-9) and huge.max() <= 0.99 + 1e-12


def test_outlier_ratio_is_pooled_over_the_block():
    # pooled mean = (1·9 + 30) / 10 = 3.9; with M = 5 only 30 > 19.5
    scores = [torch.ones(3, 3), torch.tensor([[30.0]])]
    assert outlier_ratio(scores, 5.0) == pytest.approx(0.1)
    assert outlier_ratio(scores, 0.2) == pytest.approx(1.0)  # 0.78 < 1


def test_owl_gives_outlier_rich_blocks_less_sparsity_and_keeps_the_mean():
    ratios = torch.tensor([0.01, 0.05, 0.03, 0.02])
    sizes = torch.tensor([1.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    out = owl_block_sparsity(ratios, 0.7, 0.08, sizes)
    assert weighted_mean(out, sizes) == pytest.approx(0.7, abs=1e-9)
    assert float(out[0] - out[1]) == pytest.approx(0.16)  # min-max to [0, 2λ]
    assert torch.argsort(out).tolist() == torch.argsort(-ratios).tolist()


def test_plan_global_sparsity_matches_the_target_exactly_in_weights():
    shapes = {
        "layers.0.a": LayerShape(0, "a", 7, 11),
        "layers.0.b": LayerShape(0, "b", 5, 13),
        "layers.1.a": LayerShape(1, "a", 7, 11),
        "layers.1.b": LayerShape(1, "b", 5, 13),
    }
    plan = make_plan(shapes, [0.4, 0.73], {"layers.1.a": torch.linspace(0.5, 0.96, 7)})
    pruned = sum(float(plan.rows[k].sum()) * s.d_in for k, s in shapes.items())
    planned = 0.4 * (77 + 65) + 0.73 * 65 + float(torch.linspace(0.5, 0.96, 7).sum()) * 11
    assert abs(pruned - planned) <= 2  # at most half a weight of rounding per layer
    assert plan.target(1, "a", torch.empty(7, 11)) is plan.rows["layers.1.a"]
    floats = make_plan(shapes, [0.4, 0.73], row_wise=False)
    assert floats.target(1, "b", torch.empty(5, 13)) == 0.73
    mixed = make_plan(shapes, [0.4, 0.73], {"layers.1.a": torch.linspace(0.5, 0.96, 7)}, False)
    assert torch.equal(mixed.target(1, "a", torch.empty(7, 11)), plan.rows["layers.1.a"])
    assert mixed.target(0, "a", torch.empty(7, 11)) == 0.4  # SparseGPT keeps its tile-wide choice
