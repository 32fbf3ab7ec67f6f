"""Depth scoring on hand values, written against mutmut run 2's survivors in depth.py
(MUTATION.md §7): last-token rows, weights (also in bfloat16), the cosine clamp, float64 win
rates, the seed, and the layer-index checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from prunekit.errors import PrunekitError
from prunekit.structural.depth import (
    angular_sum,
    check_layers,
    cosine_sum,
    kl_sum,
    round_stability,
)

# three tokens of one window: orthogonal, identical, opposite (1 − cos: 1, 0, 2; angle/π: ½, 0, 1)
H_IN = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]])
H_OUT = torch.tensor([[[0.0, 3.0], [2.0, 2.0], [0.0, -1.0]]])


def test_last_token_scores_the_last_position_of_each_window() -> None:
    """Windows of 3: the last tokens are opposite (1 − cos = 2), position 1 identical (0)."""
    h_in, h_out = H_IN.repeat(2, 1, 1), H_OUT.repeat(2, 1, 1)
    assert cosine_sum(h_in, h_out, last_token=True) == (pytest.approx(4.0), 2)
    assert angular_sum(h_in, h_out, last_token=True) == (pytest.approx(2.0), 2)


def test_weighted_sums_by_hand() -> None:
    """Weights ½, 2, 1: Σ w·s and Σ w = 3.5 for cosine, angular and KL."""
    w = torch.tensor([[0.5, 2.0, 1.0]])
    assert cosine_sum(H_IN, H_OUT, weight=w) == (pytest.approx(0.5 + 2.0), pytest.approx(3.5))
    # float32 arccos near cos = 1 is off by ~1e-4 (it is steep there)
    assert angular_sum(H_IN, H_OUT, weight=w) == (
        pytest.approx(0.25 + 1.0, abs=1e-3),
        pytest.approx(3.5),
    )
    logp = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]]]))
    logq = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.25, 0.75]]]))
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_sum(logp, logq, weight=w) == (pytest.approx(2.0 * kl), pytest.approx(3.5))


def test_bfloat16_weights_are_summed_in_the_scores_float32() -> None:
    """257 weights of 1 in bfloat16 count 257 (bfloat16's own sum would be 256)."""
    h = torch.randn(1, 257, 4, generator=torch.Generator().manual_seed(0))
    w = torch.ones(1, 257, dtype=torch.bfloat16)
    assert cosine_sum(h, h, weight=w)[1] == 257.0


def test_angular_clamps_rounded_cosines_into_minus_one_to_one() -> None:
    """Rows against themselves and their negation: angles ≈ 0 and 1, never NaN, though float32
    cosines here go past ±1 (arccos near ±1 is steep: ~1e-4 a row off)."""
    h = torch.randn(1, 400, 64, generator=torch.Generator().manual_seed(0)) * 37.0
    cos = F.cosine_similarity(h[0], h[0], dim=-1)
    assert float(cos.max()) > 1.0 and float(F.cosine_similarity(h[0], -h[0], dim=-1).min()) < -1
    assert angular_sum(h, h) == (pytest.approx(0.0, abs=0.05), 400)
    assert angular_sum(h, -h) == (pytest.approx(400.0, abs=0.05), 400)


def test_win_rates_compare_sums_in_float64() -> None:
    """Scores 1 + 1e-9 and 1 (equal in float32): layer 6 wins every resample, also via counts."""
    sums = {4: [(1.0 + 1e-9, 1.0), (1.0 + 1e-9, 1.0)], 6: [(1.0, 1.0), (1.0, 1.0)]}
    assert round_stability(sums, resamples=20) == {4: 0.0, 6: 1.0}
    counts = {4: [(1.0, 1.0), (1.0, 1.0)], 6: [(1.0, 1.0 + 1e-9), (1.0, 1.0 + 1e-9)]}
    assert round_stability(counts, resamples=20) == {4: 0.0, 6: 1.0}


def _loop_wins(per_batch: dict[int, list[tuple[float, float]]], resamples: int, seed: int) -> dict:
    """Brute force: resample the batches one draw at a time, argmin of Σs/Σn (lower layer on ties)."""
    layers = sorted(per_batch)
    batches = len(per_batch[layers[0]])
    g = torch.Generator().manual_seed(seed)
    wins = dict.fromkeys(layers, 0)
    for _ in range(resamples):
        draw = torch.randint(0, batches, (batches,), generator=g).tolist()
        score = {
            i: sum(per_batch[i][b][0] for b in draw) / sum(per_batch[i][b][1] for b in draw)
            for i in layers
        }
        wins[min(layers, key=lambda i: (score[i], i))] += 1
    return {i: w / resamples for i, w in wins.items()}


def test_round_stability_uses_the_seed_it_is_given() -> None:
    """Seed 5: the plain loop's win rates with that seed, which differ from seed 0's."""
    per_batch = {
        2: [(1.0, 1.0), (3.0, 1.0), (2.0, 1.0)],
        5: [(2.0, 1.0), (2.0, 1.0), (2.0, 1.0)],
        7: [(3.0, 1.0), (1.0, 1.0), (2.5, 1.0)],
    }
    want = _loop_wins(per_batch, 50, seed=5)
    assert want != _loop_wins(per_batch, 50, seed=0)
    assert round_stability(per_batch, resamples=50, seed=5) == pytest.approx(want)


def test_check_layers_accepts_every_index_from_zero_to_the_last() -> None:
    """4 layers: dropping 0 and 3 (or 3 twice) is fine."""
    check_layers([0, 3], 4)
    check_layers([3, 3], 4)


@pytest.mark.parametrize("drop", [[-1], [4], [0, 5, -2]])
def test_check_layers_refuses_indices_outside_the_model(drop: list[int]) -> None:
    """−1 and 4 of a 4-layer model: one exact line naming them and the range 0–3."""
    bad = [i for i in drop if i < 0 or i >= 4]
    with pytest.raises(PrunekitError) as err:
        check_layers(drop, 4)
    assert str(err.value) == (
        f"depth layers {bad} do not exist: the model has layers 0–3 here; "
        "choose indices in that range"
    )


def test_check_layers_keeps_one_layer_counting_distinct_indices() -> None:
    """All 3 layers (with a repeat) cannot go; the check_remove message follows."""
    with pytest.raises(PrunekitError, match=r"cannot remove 3 of 3 layers .* ≤ 2$"):
        check_layers([0, 1, 2, 2], 3)
