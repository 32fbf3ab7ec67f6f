"""search/run.py's choice of candidate plans for the fitness ↔ pass@1 check."""

from __future__ import annotations

from prunekit.search.run import _spread


def _cands(values: list[float]) -> list[dict]:
    return [{"levels": [i], "fitness": f} for i, f in enumerate(values)]


def test_spread_covers_the_fitness_range_not_the_crowd_near_the_best():
    # six evaluations crowd near the best; an even spread over ranks would take 0.013 from them
    values = [0.0, 0.01, 0.011, 0.012, 0.013, 0.014, 0.015, 0.5, 1.0]
    assert [e["fitness"] for e in _spread(_cands(values), 3)] == [0.0, 0.5, 1.0]
    # targets 0, .25, .5, .75, 1 in turn, each taking the nearest value not taken yet:
    # 0 → 0.0, .25 → 0.015, .5 → 0.5, .75 → 1.0, 1 → 0.014 (the last left nearest to it)
    assert [e["fitness"] for e in _spread(_cands(values), 5)] == [0.0, 0.014, 0.015, 0.5, 1.0]


def test_spread_keeps_each_genome_once_and_all_when_few():
    cands = _cands([0.3, 0.1]) + [{"levels": [0], "fitness": 0.3}]
    assert [e["levels"] for e in _spread(cands, 5)] == [[1], [0]]


def test_spread_never_picks_one_candidate_twice_for_near_targets():
    values = [0.0, 0.001, 0.002, 1.0]
    picked = _spread(_cands(values), 3)
    assert len({tuple(e["levels"]) for e in picked}) == 3
    assert [e["fitness"] for e in picked] == [0.0, 0.002, 1.0]
