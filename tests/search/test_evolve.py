"""Evolutionary operators on synthetic spaces: mutation never leaves the budget (many seeds),
the start fits, and multi-stage selection keeps the true best on a noisy synthetic fitness."""

from __future__ import annotations

import random

import pytest

from prunekit.errors import PrunekitError
from prunekit.search.evolve import initial_genome, mutate, select, stage_survivors
from prunekit.search.levels import LayerSpace, SearchSpace, Variant


def _space(layers: int = 8, seed: int = 0, drop: bool = True) -> SearchSpace:
    """Layers with uneven level costs (as FFN × head ladders give), the last level a drop."""
    rng = random.Random(seed)
    spaces = []
    for _ in range(layers):
        dense = rng.randint(900, 1100)
        steps = sorted({rng.randint(50, 400) for _ in range(4)})
        costs = [dense] + [dense - s for s in steps]
        variants = [Variant(100 - 10 * k, 2) for k in range(len(costs))]
        if drop:
            costs.append(0)
            variants.append(Variant(0, 0, True))
        spaces.append(LayerSpace(100, 2, variants, costs))
    return SearchSpace(spaces)


@pytest.mark.parametrize("seed", range(40))
def test_mutation_never_violates_the_budget(seed):
    space = _space(seed=seed)
    dense = space.cost([0] * len(space.layers))
    rng = random.Random(seed)
    limit = dense * rng.uniform(0.45, 0.9)
    band = space.step()
    parent = initial_genome(space, limit, rng)
    assert space.feasible(parent, limit) and space.cost(parent) >= limit - band
    seen: set = set()
    for n in range(64):
        if n % 8 == 0:  # distinct within a generation of 8, as the search loop asks
            seen = set()
        child = mutate(parent, space, limit, band, rng, seen)
        assert child is not None
        assert space.cost(child) <= limit, (seed, child)
        assert space.cost(child) >= limit - band
        assert space.dropped(child) < len(space.layers)
        assert child != parent and child not in seen
        assert all(0 <= g <= s.top for g, s in zip(child, space.layers))
        assert sum(abs(a - b) for a, b in zip(child, parent)) <= 8  # 3 switches + 2 raises
        seen.add(child)
        parent = child if n % 8 == 7 else parent


def test_mutation_gives_up_when_nothing_fits():
    space = _space(layers=2, drop=False)
    top = tuple(s.top for s in space.layers)
    limit = space.cost(top)  # only the most compressed genome fits
    assert mutate(top, space, limit, space.step(), random.Random(0)) is None


def test_initial_genome_refuses_an_impossible_budget():
    space = _space(drop=False)
    with pytest.raises(PrunekitError, match="no candidate fits"):
        initial_genome(space, space.min_cost() - 1, random.Random(0))


def test_every_dropped_is_not_a_candidate():
    space = _space(layers=3)
    assert space.min_cost() > 0
    assert not space.feasible(tuple(s.top for s in space.layers), 10**9)


@pytest.mark.parametrize("seed", range(25))
def test_multistage_selection_keeps_the_true_best(seed):
    """Early stages see fewer tokens (more noise), but never enough to flip the true best below
    the survivors' cut: it must come out on top; a selection keeping the worst would fail."""
    rng = random.Random(seed)
    genomes = [(i,) for i in range(16)]
    truth = {g: rng.uniform(1.0, 2.0) for g in genomes}
    best = min(genomes, key=truth.get)
    gap = sorted(truth.values())[1] - truth[best]
    noise = {g: [rng.uniform(-1, 1) for _ in range(3)] for g in genomes}
    scale = [min(gap, 0.4) * 0.49, min(gap, 0.2) * 0.49, 0.0]  # noise halves, exact at the end

    def score(j, g):
        return truth[g] + scale[j] * noise[g][j]

    ranked = select(genomes, stage_survivors(16, 3), score)
    assert ranked[0][0] == best and ranked[0][1] == truth[best]


def test_selection_is_elitist_and_halves():
    assert stage_survivors(8, 3) == [4, 2, 1]
    assert stage_survivors(16, 4) == [8, 4, 2, 1]
    calls = []

    def score(j, g):
        calls.append((j, g))
        return {(0,): 3.0, (1,): 2.0, (9,): 1.0}.get(g, 5.0)

    out = select([(0,), (1,), (2,), (3,)], [2, 1], score, parent=(9,))
    assert out == [((9,), 1.0)]
    assert [c for c in calls if c[0] == 0] == [(0, (0,)), (0, (1,)), (0, (2,)), (0, (3,))]
    assert sorted(g for j, g in calls if j == 1) == [(0,), (1,), (9,)]


def test_mutation_leaves_a_uniform_start_near_the_limit():
    """qwen2.5-coder-0.5b's ladder at the seed recipe's budget: the start is 23 layers at FFN
    0.868 and one dense; one level up saves less than one level down costs, so switches alone only
    permuted the start (the 1.5-h search sat on it from generation 6). Children must reach other
    level counts."""
    from collections import Counter

    costs = [14912384, 13192064, 11643776, 10095488, 8375168, 0]
    variants = [Variant(w, 2) for w in (4864, 4224, 3648, 3072, 2432)] + [Variant(0, 0, True)]
    space = SearchSpace([LayerSpace(4864, 2, variants, costs) for _ in range(24)])
    limit, rng = 318495655 - 896, random.Random(0)
    parent = initial_genome(space, limit, rng)
    assert sorted(Counter(parent).items()) == [(0, 1), (1, 23)]
    children = [mutate(parent, space, limit, space.step(), rng) for _ in range(200)]
    assert all(c is not None and limit - space.step() <= space.cost(c) <= limit for c in children)
    counts = {tuple(sorted(Counter(c).items())) for c in children}
    assert len(counts) > 1 and any(c.count(2) for c in children)  # some layer reaches FFN 0.75
