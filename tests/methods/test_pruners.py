"""Magnitude and Wanda pruners: N:M groups and per-row counts against a brute-force selection."""

import pytest
import torch

from prunekit.calibration.stats import SQ_NORM, LinearStats
from prunekit.methods.masks import row_prune_counts
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Magnitude, Wanda


def brute_force_nm(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """For each row and each group of m columns, the n columns with the smallest scores."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    for r in range(scores.shape[0]):
        for g in range(0, scores.shape[1], m):
            order = sorted(range(g, g + m), key=lambda j: float(scores[r, j]))
            mask[r, order[:n]] = True
    return mask


@pytest.mark.parametrize("pruner", [Magnitude(), Wanda()])
@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_nm_pruning_zeroes_the_lowest_n_of_every_group(pruner, n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    weight = torch.randn(6, 16, generator=g)
    x = torch.randn(40, 16, generator=g) * torch.linspace(0.1, 3.0, 16)
    stats = LinearStats(frozenset({SQ_NORM}))
    stats.add(x)
    by_hand = weight.abs() * (x.pow(2).sum(0).sqrt() if pruner.name == "wanda" else 1.0)
    expected = brute_force_nm(by_hand, n, m)
    pruned = weight.clone()
    mask = pruner.prune(pruned, stats, n / m, Pattern(n, m))
    assert torch.equal(mask, expected)
    assert torch.equal(pruned, weight.masked_fill(expected, 0.0))


def test_row_counts_are_clamped_to_the_row():
    counts = row_prune_counts(10, torch.tensor([-0.2, 0.0, 0.55, 1.0, 1.3]), 5)
    assert counts.tolist() == [0, 0, 5, 10, 10]
