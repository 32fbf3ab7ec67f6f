"""pass@k: the closed form against brute-force enumeration of k-subsets."""

from __future__ import annotations

import itertools
import math

import pytest

from prunekit.evaluation.passk import ks_for, mean_pass_at_k, pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_special_cases():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    # large n stays finite and matches the binomial form
    n, c, k = 1000, 17, 50
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9)


def test_mean_and_ks():
    assert mean_pass_at_k([(1, 1), (1, 0), (1, 1), (1, 0)], 1) == 0.5
    assert ks_for(1) == [1]
    assert ks_for(10) == [1, 5, 10]
    assert ks_for(2) == [1, 2]
    assert ks_for(200) == [1, 5, 10, 100]


@pytest.mark.parametrize("n,c,k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)
