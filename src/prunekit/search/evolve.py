"""The evolutionary operators (EvoPress style), pure functions of a search space and a budget.

- `initial_genome`: near-uniform start: raise every layer one level at a time (in a seeded
  order) until the candidate fits the budget.
- `mutate`: level switch: one layer one level up (more compressed), another one level down;
  1–3 switches per child, then, if over the budget, up to REFIT more layers one level up; a
  child outside [limit − band, limit] (or with no layer left) is re-drawn. Levels differ in
  cost, so the budget is kept as a band rather than exactly, and switches alone could only
  permute the start's levels when it sits near the limit (one level up saves less than one
  level down costs).
- `select`: multi-stage selection: every stage scores the survivors on more tokens and keeps the
  best `survivors[j]`; the parent joins the last stage (elitism).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from prunekit.errors import PrunekitError
from prunekit.search.levels import SearchSpace

Genome = tuple[int, ...]
TRIES = 2000
REFIT = 2  # extra one-level raises that bring a switched child back under the budget


def initial_genome(space: SearchSpace, limit: float, rng: random.Random) -> Genome:
    """Every layer raised one level per round (seeded order) until within `limit`."""
    genome = [0] * len(space.layers)
    order = list(range(len(genome)))
    rng.shuffle(order)
    while not space.feasible(genome, limit):
        moved = False
        for i in order:
            if space.feasible(genome, limit):
                break
            if genome[i] < space.layers[i].top:
                genome[i] += 1
                moved = True
        if not moved:
            raise PrunekitError(
                f"no candidate fits the budget: the most compressed one costs "
                f"{space.min_cost():,} layer parameters, the budget allows {limit:,.0f}"
            )
    return tuple(genome)


def _raisable(genome: list[int], space: SearchSpace) -> list[int]:
    """Layers that can go one level up (more compressed)."""
    return [i for i, g in enumerate(genome) if g < space.layers[i].top]


def _switch(genome: list[int], space: SearchSpace, rng: random.Random) -> bool:
    up = _raisable(genome, space)
    if not up:
        return False
    a = rng.choice(up)
    down = [i for i, g in enumerate(genome) if g > 0 and i != a]
    if not down:
        return False
    b = rng.choice(down)
    genome[a] += 1
    genome[b] -= 1
    return True


def mutate(
    parent: Genome,
    space: SearchSpace,
    limit: float,
    band: float,
    rng: random.Random,
    exclude: set[Genome] | frozenset = frozenset(),
    tries: int = TRIES,
) -> Genome | None:
    """A child of `parent` by level switches within [limit − band, limit], not in `exclude`;
    None when `tries` draws found none."""
    for _ in range(tries):
        child = list(parent)
        switches = 1 + (rng.random() < 0.5) + (rng.random() < 0.25)
        if not all(_switch(child, space, rng) for _ in range(switches)):
            continue
        for _ in range(REFIT):
            up = _raisable(child, space)
            if space.cost(child) <= limit or not up:
                break
            child[rng.choice(up)] += 1
        cost = space.cost(child)
        out = tuple(child)
        if out == parent or out in exclude or cost < limit - band:
            continue
        if space.feasible(child, limit):
            return out
    return None


def select(
    candidates: Sequence[Genome],
    survivors: Sequence[int],
    score: Callable[[int, Genome], float],
    parent: Genome | None = None,
) -> list[tuple[Genome, float]]:
    """Stage j scores the remaining candidates with `score(j, genome)` (lower is better) and keeps
    the best `survivors[j]` (ties: earlier candidate); `parent` joins the last stage. Returns the
    last stage's (genome, score) pairs, best first."""
    pool = list(dict.fromkeys(candidates))
    ranked: list[tuple[Genome, float]] = []
    for j, keep in enumerate(survivors):
        if j == len(survivors) - 1 and parent is not None and parent not in pool:
            pool.append(parent)
        scored = [(g, score(j, g)) for g in pool]
        order = sorted(range(len(scored)), key=lambda n: (scored[n][1], n))
        ranked = [scored[n] for n in order[:keep]]
        pool = [g for g, _ in ranked]
    return ranked


def stage_survivors(offspring: int, stages: int) -> list[int]:
    """Survivors per stage: halved each stage, one after the last."""
    out = [max(1, offspring // 2 ** (j + 1)) for j in range(stages - 1)]
    return [*out, 1]
