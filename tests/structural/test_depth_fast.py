"""Depth scoring without re-scoring: one round, same first-round scores, counted cost."""

from __future__ import annotations

import pytest
import torch
from structural_calls import ctx, depth

from conftest import tiny_model
from prunekit.structural.depth import greedy_depth, ranking_agreement


def _batches(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (2, 12), generator=g) for _ in range(2)]


@pytest.mark.parametrize("criterion", ["kl", "cosine"])
def test_one_shot_removes_the_lowest_first_round_scores(criterion):
    model = tiny_model("gemma3")  # 4 layers
    exact = greedy_depth(ctx(model, _batches()), depth(2, criterion))
    cheap = greedy_depth(ctx(model, _batches()), depth(2, criterion), rescore=False)
    assert len(cheap.rounds) == 1 and len(exact.rounds) == 2
    assert cheap.rounds[0] == exact.rounds[0]  # the same first round, bit for bit
    first = cheap.rounds[0]
    assert cheap.removed == sorted(first, key=lambda i: (first[i], i))[:2]
    assert cheap.removed[0] == exact.removed[0]
    agreement = ranking_agreement(exact, cheap)
    assert agreement["set_overlap"] == len(set(exact.removed) & set(cheap.removed)) / 2
    assert agreement["same_order"] == (exact.removed == cheap.removed)


def test_kl_cost_counts_layer_passes_and_head_rows():
    """L layers: the streams (L passes) + Σ_p (L−1−p) candidate passes; heads: final + L candidates."""
    model = tiny_model("gemma3")
    n_layers, tokens = 4, 2 * 2 * 12
    cheap = greedy_depth(ctx(model, _batches()), depth(2, "kl"), rescore=False)
    candidates = sum(n_layers - 1 - p for p in range(n_layers))
    assert cheap.cost["layer_passes"] == n_layers + candidates
    assert cheap.cost["forwards_by_layer_passes"] == pytest.approx(
        (n_layers + candidates) / n_layers
    )
    assert cheap.cost["head_rows"] == (1 + n_layers) * tokens
    assert cheap.cost["one_forward_s"] > 0 and cheap.cost["forwards_by_time"] >= 1
    exact = greedy_depth(ctx(model, _batches()), depth(2, "kl"))
    assert exact.cost["layer_passes"] > cheap.cost["layer_passes"]
    assert exact.to_dict()["cost"] == exact.cost and exact.to_dict()["rescore"] is True
