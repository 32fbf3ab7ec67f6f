"""Depth stability: each candidate's bootstrap win rate over resampled calibration batches equals a
plain-loop bootstrap with the same generator; planted winners, splits, ties, one batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from structural_calls import ctx, depth

from conftest import skip_layers, tiny_model
from prunekit.recipes.runner import render_steps
from prunekit.structural import depth as depth_module
from prunekit.structural.depth import bootstrap_wins, greedy_depth, round_stability


def _loop_wins(sums: list[list[float]], counts: list[list[float]], resamples: int, seed: int = 0):
    """Brute force: one resample at a time (same generator), Σs/Σn per candidate, argmin by
    (score, column)."""
    batches, cands = len(sums), len(sums[0])
    g = torch.Generator().manual_seed(seed)
    wins = [0] * cands
    for _ in range(resamples):
        draw = torch.randint(0, batches, (batches,), generator=g).tolist()
        score = [
            sum(sums[b][c] for b in draw) / sum(counts[b][c] for b in draw) for c in range(cands)
        ]
        wins[min(range(cands), key=lambda c: (score[c], c))] += 1
    return [w / resamples for w in wins]


def test_bootstrap_wins_equal_a_plain_loop():
    g = torch.Generator().manual_seed(3)
    sums = torch.rand(6, 4, generator=g, dtype=torch.float64)
    counts = torch.randint(1, 5, (6, 4), generator=g).double()
    wins = bootstrap_wins(sums, counts, resamples=300)
    assert wins.tolist() == _loop_wins(sums.tolist(), counts.tolist(), 300)
    assert 0 < wins.max() < 1  # random scores: no candidate wins every resample
    assert float(wins.sum()) == pytest.approx(1.0)
    assert torch.equal(wins, bootstrap_wins(sums, counts, resamples=300))  # seeded: deterministic


def test_planted_winner_splits_and_ties():
    ones = torch.ones(8, 4, dtype=torch.float64)
    planted = torch.tensor([[5.0, 4.0, 1.0, 3.0], [6.0, 5.0, 2.0, 7.0]]).repeat(4, 1)
    assert bootstrap_wins(planted, ones).tolist() == [0.0, 0.0, 1.0, 0.0]
    # columns 0 and 1: equal means, 0 alternates around 1's constant; the rest never close
    tie_ish = torch.tensor([[1.0, 2.0, 9.0, 9.0], [3.0, 2.0, 9.0, 9.0]]).repeat(4, 1)
    wins = bootstrap_wins(tie_ish, ones)
    assert wins[0] > 0.2 and wins[1] > 0.2 and wins[2:].sum() == 0
    assert float(wins.sum()) == pytest.approx(1.0)
    # exact ties (integers: every sum exact) go to the lower layer, as the removal rule does
    same = {9: [(2.0, 1.0), (4.0, 2.0)], 6: [(2.0, 1.0), (4.0, 2.0)], 11: [(5.0, 1.0), (9.0, 2.0)]}
    assert round_stability(same) == {6: 1.0, 9: 0.0, 11: 0.0}


@torch.no_grad()
def _hand_per_batch(model, batches, weights, removed, cand):
    """Per batch: Σ w·KL(p ‖ q) and Σ w in float64, from full forwards with layers skipped."""
    p_model, q_model = skip_layers(model, removed), skip_layers(model, [*removed, cand])
    out = []
    for b, w in zip(batches, weights):
        lp = F.log_softmax(p_model(b).logits.double(), -1)
        lq = F.log_softmax(q_model(b).logits.double(), -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)
        out.append((float((w.double() * kl).sum()), float(w.sum())))
    return out


def _report(result, layers_after: int) -> dict:
    """A recipe report with this depth result as its one step (3 layers before)."""
    step = {"step": "depth", "params_after": {"total": 1}, "layers_before": 3}
    return {"steps": [{**step, "layers_after": layers_after, **result.to_dict()}]}


def _answers(n: int = 4):
    """Single-sequence batches (as answered sources give), weighted on their second half."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 128, (1, t), generator=g) for t in (7, 12, 9, 10)[:n]]
    weights = [
        torch.cat([torch.zeros(1, b.shape[1] // 2), torch.ones(1, b.shape[1] - b.shape[1] // 2)], 1)
        for b in batches
    ]
    return batches, weights


@pytest.mark.parametrize("rescore", [True, False])
def test_greedy_depth_win_rates_equal_a_loop_over_per_batch_scores(rescore, monkeypatch):
    model = tiny_model("llama")  # 3 layers
    batches, weights = _answers()
    seen = []

    def spy(per_batch: dict, resamples: int) -> dict:  # records each round's per-batch totals
        seen.append(per_batch)
        return round_stability(per_batch, resamples)

    monkeypatch.setattr(depth_module, "round_stability", spy)
    rng = torch.get_rng_state()
    result = greedy_depth(
        ctx(model, batches, weights), depth(2, "kl"), rescore=rescore, resamples=200
    )
    assert torch.equal(torch.get_rng_state(), rng)  # a private generator: global RNG untouched
    assert len(result.stability) == len(result.rounds) == len(seen) == (2 if rescore else 1)
    for r, (per_batch, wins) in enumerate(zip(seen, result.stability)):
        removed = result.removed[:r]
        layers = sorted(per_batch)
        assert set(wins) == set(layers) == set(result.rounds[r])
        for cand in layers:  # per-batch totals: the hand values, and they give the round's score
            hand = _hand_per_batch(model, batches, weights, removed, cand)
            assert per_batch[cand] == [pytest.approx(h, rel=1e-3, abs=1e-7) for h in hand]
            total, count = map(sum, zip(*per_batch[cand]))
            assert total / count == pytest.approx(result.rounds[r][cand], rel=1e-12)
        sums = [[per_batch[c][b][0] for c in layers] for b in range(len(batches))]
        counts = [[per_batch[c][b][1] for c in layers] for b in range(len(batches))]
        assert [wins[c] for c in layers] == _loop_wins(sums, counts, 200)
        assert sum(wins.values()) == pytest.approx(1.0)
    st = result.to_dict()["stability"]
    assert st == {
        "resamples": 200,
        "batches": 4,
        "seed": 0,
        "rounds": [{str(k): v for k, v in w.items()} for w in result.stability],
    }
    report = _report(result, layers_after=1)
    first = result.removed[0]
    assert (
        f"layer {first} removed: best in {result.stability[0][first]:.0%} of 200 bootstrap resamples of the 4 batches (next: "
        in render_steps(report)
    )


def test_one_batch_claims_no_stability():
    model = tiny_model("llama")
    batches, weights = _answers(1)
    result = greedy_depth(ctx(model, batches, weights), depth(1, "cosine"))
    assert result.stability is None
    st = result.to_dict()["stability"]
    assert st["rounds"] is None and st["batches"] == 1 and "needs ≥ 2" in st["reason"]
    report = _report(result, layers_after=2)
    assert "Bootstrap win rates: none (1 calibration batch" in render_steps(report)
