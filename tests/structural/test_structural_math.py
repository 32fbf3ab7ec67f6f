"""Small exact checks of structural/ (values worked out by hand), added for the mutants mutmut
found unchecked (tests/MUTATION.md, structural/)."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.structural.depth import DepthResult, angular_sum, cosine_sum, kl_sum
from prunekit.structural.ratios import Blocks, allocate, layer_weights
from prunekit.structural.width import keep_count


def test_depth_result_to_dict_names_every_field():
    """The report section: every field under its own name, round keys as strings."""
    result = DepthResult("angular", True, [2, 0], [{0: 0.5, 2: 0.25}, {0: 0.75}], False, {"x": 1})
    assert result.to_dict() == {
        "criterion": "angular",
        "last_token": True,
        "rescore": False,
        "removed": [2, 0],
        "rounds": [{"0": 0.5, "2": 0.25}, {"0": 0.75}],
        "cost": {"x": 1},
    }


def test_keep_count_never_exceeds_a_width_below_one_multiple():
    """Width 32 with multiple 64: 16 rounds to 0 multiples, the floor is the whole width, not 64."""
    assert keep_count(32, 0.5, 64) == 32
    assert keep_count(100, 1.0, 64) == 100  # keep 1: the width itself, not 2 × 64 clipped
    assert keep_count(200, 0.9, 64) == 192  # 180 → 2.81 → 3 multiples
    for bad in (0, -1, 1.5):
        with pytest.raises(PrunekitError, match="width multiple must be a whole number ≥ 1"):
            keep_count(64, 0.5, bad)


def test_depth_sums_count_the_scored_tokens():
    """2 windows × 3 positions: 6 tokens scored, or 2 with last_token; KL of identical rows is 0."""
    h = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    assert cosine_sum(h, h)[1] == 6 and cosine_sum(h, h, last_token=True)[1] == 2
    assert angular_sum(h, -h)[1] == 6 and angular_sum(h, -h, last_token=True)[1] == 2
    assert angular_sum(h, -h)[0] == pytest.approx(6.0, abs=5e-3)  # π/π per token (float32 arccos)
    logp = torch.log_softmax(h, dim=-1)
    assert kl_sum(logp, logp) == (0.0, 6)
    assert kl_sum(logp[:, -1], logp[:, -1])[1] == 2


def test_flat_blocks_under_adaptive_and_stable_weights():
    """All blocks flat (every CV 0): equal weights. One flat block under `stable`: 1/1e-6 of the mean
    CV's weight, finite (CV of 1..8 = √5.25 / 4.5 by hand)."""
    flat, varied = torch.full((8,), 3.0), torch.arange(1.0, 9.0)
    assert layer_weights("adaptive", [flat, flat]) == [1.0, 1.0]
    assert layer_weights("stable", [flat, flat, flat]) == [1.0, 1.0, 1.0]
    cv = math.sqrt(5.25) / 4.5
    mean = cv / 2
    assert layer_weights("stable", [flat, varied]) == pytest.approx([1e6, mean / cv])


def test_equal_blocks_tie_to_the_lower_index():
    """Two identical blocks and one group to place: the first block loses it."""
    blocks = Blocks.build([4, 4], [10, 10], max_ratio=0.8, min_keep=1)
    scores = [torch.tensor([1.0, 2.0, 3.0, 4.0])] * 2
    assert allocate(blocks, [1.0, 1.0], 10, scores) == [1, 0]


def test_blocks_total_and_caps_by_hand():
    """4 groups of 10 + 6 of 20 parameters = 160; caps ⌊0.5·g⌋ in whole steps of 2, g − 3 at most."""
    blocks = Blocks.build([4, 6], [10, 20], max_ratio=0.5, min_keep=3, step=2)
    assert blocks.total == 160
    assert blocks.caps == [0, 2]  # min(2, 1) → 0 steps; min(3, 3) → 2 (one step of 2)
