"""Depth scores weighted per position (e.g. on the answer tokens of the model's own answers) equal a
brute-force weighted mean over full forwards without the layer; all-ones weights change nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from structural_calls import ctx, depth

from conftest import skip_layers, tiny_model
from prunekit.errors import PrunekitError
from prunekit.structural.depth import cosine_sum, greedy_depth, kl_sum


def _answers(seed=0):
    """Single-sequence batches of different lengths (as answered sources give) and weights with
    zeros (the prompt) and unequal values, so weighting cannot pass as masking."""
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randint(0, 128, (1, n), generator=g) for n in (7, 12, 9)]
    weights = []
    for b in batches:
        w = torch.rand(b.shape, generator=g) + 0.5
        w[:, : b.shape[1] // 2] = 0.0
        weights.append(w)
    return batches, weights


@torch.no_grad()
def _brute_weighted_kl(model, batches, weights, removed, cand):
    p_model, q_model = skip_layers(model, removed), skip_layers(model, [*removed, cand])
    num = den = 0.0
    for b, w in zip(batches, weights):
        lp = F.log_softmax(p_model(b).logits.double(), -1)
        lq = F.log_softmax(q_model(b).logits.double(), -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)
        num, den = num + float((w.double() * kl).sum()), den + float(w.sum())
    return num / den


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_weighted_kl_matches_brute_force_each_round(arch):
    model = tiny_model(arch)
    batches, weights = _answers()
    result = greedy_depth(ctx(model, batches, weights), depth(2, "kl"))
    for r, scores in enumerate(result.rounds):
        for cand, score in scores.items():
            expected = _brute_weighted_kl(model, batches, weights, result.removed[:r], cand)
            assert score == pytest.approx(expected, rel=1e-3)  # float32 against float64
        assert result.removed[r] == min(scores, key=scores.get)


def test_weighted_scores_differ_from_unweighted_and_ones_change_nothing():
    model = tiny_model("qwen2")
    batches, weights = _answers(1)
    plain = greedy_depth(ctx(model, batches), depth(1, "kl"))
    ones = greedy_depth(ctx(model, batches, [torch.ones(b.shape) for b in batches]), depth(1))
    weighted = greedy_depth(ctx(model, batches, weights), depth(1, "kl"))
    for layer, score in plain.rounds[0].items():
        assert ones.rounds[0][layer] == pytest.approx(score, rel=1e-5)
        assert weighted.rounds[0][layer] != pytest.approx(score, rel=1e-3)
    cos_ones = greedy_depth(
        ctx(model, batches, [torch.ones(b.shape) for b in batches]), depth(1, "cosine")
    )
    cos_plain = greedy_depth(ctx(model, batches), depth(1, "cosine"))
    assert cos_ones.rounds[0] == pytest.approx(cos_plain.rounds[0], rel=1e-5)


def test_weighted_pure_scores_by_hand():
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    o = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])
    w = torch.tensor([[0.5, 2.0, 1.0]])
    assert cosine_sum(h, o, weight=w) == (pytest.approx(2.0), pytest.approx(3.5))  # 0·.5 + 1·2 + 0
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    logq = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    kl1 = float(0.5 * torch.log(torch.tensor(2.0)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75)))
    total, count = kl_sum(logp, logq, torch.tensor([3.0, 2.0]))
    assert (total, count) == (pytest.approx(2 * kl1), pytest.approx(5.0))


def test_bad_weights_are_one_line():
    model = tiny_model("llama")
    batches, weights = _answers()
    with pytest.raises(PrunekitError, match="weights or last_token, not both"):
        greedy_depth(ctx(model, batches, weights), depth(1, "kl", last_token=True))
    with pytest.raises(PrunekitError, match="shaped like each calibration batch"):
        greedy_depth(ctx(model, batches, weights[:2]), depth(1, "kl"))
    zero = [torch.zeros(b.shape) for b in batches]
    with pytest.raises(PrunekitError, match="weight > 0"):
        greedy_depth(ctx(model, batches, zero), depth(1, "kl"))
