"""Per-block ratios: fluctuation, skip, adaptive vs uniform, and the budget met up to one group."""

from __future__ import annotations

import random

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.structural.ratios import Blocks, allocate, fluctuation, layer_weights


def test_fluctuation_is_the_coefficient_of_variation():
    assert fluctuation(torch.tensor([1.0, 3.0])) == pytest.approx(0.5)  # std 1, mean 2
    assert fluctuation(torch.tensor([2.0, 2.0, 2.0])) == 0.0
    assert fluctuation(torch.zeros(3)) == 0.0
    # the fused score's constant is taken off before measuring: [11, 13] − 10 = [1, 3]
    assert fluctuation(torch.tensor([11.0, 13.0]), offset=10.0) == pytest.approx(0.5)


def test_skip_and_uniform_weights():
    scores = [torch.ones(4)] * 6
    assert layer_weights("uniform", scores) == [1.0] * 6
    assert layer_weights("skip", scores, skip_first=2, skip_last=1) == [0, 0, 1, 1, 1, 0]
    with pytest.raises(PrunekitError, match="leaves no block to prune"):
        layer_weights("skip", scores, skip_first=3, skip_last=3)


def test_adaptive_prunes_spread_blocks_more_than_uniform():
    flat = torch.tensor([1.0, 1.1, 0.9, 1.0])
    spread = torch.tensor([0.01, 0.02, 0.03, 4.0])  # one group carries the block
    scores = [flat, spread, flat]
    w = layer_weights("adaptive", scores)
    assert w[1] > 1 > w[0] == w[2]
    assert sum(w) == pytest.approx(3)
    blocks = Blocks.build([4, 4, 4], [10, 10, 10], max_ratio=0.8, min_keep=1)
    adaptive = allocate(blocks, w, 40, scores)
    uniform = allocate(blocks, layer_weights("uniform", scores), 40, scores)
    assert adaptive != uniform
    assert adaptive[1] > uniform[1] and sum(adaptive) == sum(uniform) == 4


def test_stable_protects_spread_blocks():
    flat = torch.tensor([1.0, 1.1, 0.9, 1.0])
    spread = torch.tensor([0.01, 0.02, 0.03, 4.0])
    scores = [flat, spread, flat]
    cv = [fluctuation(s) for s in scores]
    mean = sum(cv) / 3
    assert layer_weights("stable", scores) == pytest.approx([mean / c for c in cv])
    blocks = Blocks.build([4, 4, 4], [10, 10, 10], max_ratio=0.8, min_keep=1)
    stable = allocate(blocks, layer_weights("stable", scores), 40, scores)
    uniform = allocate(blocks, layer_weights("uniform", scores), 40, scores)
    assert stable[1] < uniform[1] and sum(stable) == 4


def _budget_cases():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 12)
        counts = [rng.randint(2, 40) for _ in range(n)]
        costs = [rng.choice([7, 100, 333]) for _ in range(n)]
        step = rng.choice([1, 1, 2, 4])
        weights = [rng.random() * 3 for _ in range(n)]
        yield counts, costs, step, weights, rng.random() * 0.6


@pytest.mark.parametrize(("counts", "costs", "step", "weights", "frac"), list(_budget_cases()))
def test_budget_is_met_up_to_one_group(counts, costs, step, weights, frac):
    blocks = Blocks.build(counts, costs, max_ratio=0.9, min_keep=1, step=step)
    target = frac * blocks.total
    reachable = sum(c * cap for c, cap in zip(costs, blocks.caps))
    if target > reachable:
        with pytest.raises(PrunekitError, match="at most"):
            allocate(blocks, weights, target)
        return
    removed = allocate(blocks, weights, target)
    done = sum(c * r for c, r in zip(costs, removed))
    # within half a step's cost of the budget (the module docstring's promise)
    assert abs(done - target) <= max(step * c for c in costs) / 2 + 1e-6
    for r, g, cap in zip(removed, counts, blocks.caps):
        assert r % step == 0 and 0 <= r <= cap and g - r >= 1


def test_caps_keep_the_last_groups_and_max_ratio():
    blocks = Blocks.build([2, 10, 64], [1, 1, 1], max_ratio=0.8, min_keep=1, step=1)
    assert blocks.caps == [1, 8, 51]
    by_eight = Blocks.build([64, 20], [1, 1], max_ratio=0.8, min_keep=8, step=8)
    assert by_eight.caps == [48, 8]  # 51 → 48 (multiple of 8); 20 − 8 = 12 → 8


def test_impossible_budget_is_one_line():
    blocks = Blocks.build([2, 2, 2], [10, 10, 10], max_ratio=0.8, min_keep=1)
    with pytest.raises(PrunekitError) as err:
        allocate(blocks, [1.0] * 3, 40, what="structured heads")
    msg = str(err.value)
    assert "\n" not in msg and "structured heads asks for 40 parameters but at most 30" in msg
    # skipped blocks take no share
    with pytest.raises(PrunekitError, match="at most 10"):
        allocate(blocks, [0.0, 1.0, 0.0], 20)


def test_uniform_ties_go_to_the_least_important_next_group():
    blocks = Blocks.build([4, 4, 4], [1, 1, 1], max_ratio=1.0, min_keep=1)
    scores = [
        torch.tensor([5.0, 6, 7, 8]),
        torch.tensor([0.1, 6, 7, 8]),
        torch.tensor([3.0, 6, 7, 8]),
    ]
    # 1 group of 3 blocks: equal fractions 1/3, block 1's lowest group is the least important
    assert allocate(blocks, [1.0] * 3, 1, scores) == [0, 1, 0]
    assert allocate(blocks, [1.0] * 3, 2, scores) == [0, 1, 1]
    assert allocate(blocks, [1.0] * 3, 0, scores) == [0, 0, 0]
