"""NeuroAL on sequences of different lengths with answer-token weights (answered calibration):
the search equals a brute force that runs every sequence alone through the whole model and pools
the weighted Σx² of each length group; corpus windows give the λs and plans they gave before."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.alignment import alignment_objective, ranked_prune, score_ranks
from prunekit.allocation.build import build_allocation, check_allocation, search_subset
from prunekit.allocation.neuroal import SearchSettings, neuroal_search, ramp_sparsity
from prunekit.allocation.plan import block_sizes, layer_shapes, make_plan
from prunekit.calibration.context import RunContext
from prunekit.errors import PrunekitError
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import get_pruner
from prunekit.models.adapters import adapter_for

GEN = torch.Generator().manual_seed(7)
CORPUS = torch.randint(0, 128, (2, 24), generator=GEN)  # two windows of one length, weight 1
ANSWERS = [torch.randint(0, 128, (1, t), generator=GEN) for t in (17, 11, 17)]
PROMPTS = (9, 4, 12)  # each answer's first positions are its prompt (weight 0)


def ragged() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A mixture's batches (a 2 × 24 corpus batch, three 1 × T answers) and their weights."""
    weights = [torch.ones(CORPUS.shape)]
    for a, p in zip(ANSWERS, PROMPTS):
        w = torch.ones(a.shape)
        w[0, :p] = 0
        weights.append(w)
    return [CORPUS, *ANSWERS], weights


# --- brute force: whole-model forwards, one sequence at a time, float64 sums ---------------------


def weighted_sq(model, seqs, weights) -> dict[str, torch.Tensor]:
    """Σ_t w_t x_t² of every decoder Linear's input, each sequence alone through the model (no
    padding, no batching); `weights` None: every token weight 1."""
    adapter = adapter_for(model)
    sums: dict[str, torch.Tensor] = {}
    current: list[torch.Tensor] = []
    handles = []
    for i, layer in enumerate(adapter.layers(model)):
        for n, lin in adapter.linears(layer).items():

            def hook(_m, inp, key=f"layers.{i}.{n}"):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                part = (x * x * current[0][:, None]).sum(0)
                sums[key] = sums[key] + part if key in sums else part

            handles.append(lin.register_forward_pre_hook(hook))
    with torch.no_grad():
        for k, seq in enumerate(seqs):
            current[:] = [torch.ones(seq.numel(), dtype=torch.float64)]
            if weights is not None:
                current[0] = weights[k].reshape(-1).double()
            model(seq.reshape(1, -1))
    for h in handles:
        h.remove()
    return sums


def term(a_d: torch.Tensor, a_s: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a_d / a_d.sum() - a_s / a_s.sum()) / a_d.numel())


def wanda_mask_(weight: torch.Tensor, norms: torch.Tensor, row_sparsity) -> None:
    """Zero the round(s_r·d_in) lowest |W|·a of every row r in place."""
    d_out, d_in = weight.shape
    s = torch.as_tensor(row_sparsity, dtype=torch.float64).expand(d_out)
    scores = weight.double().abs() * norms[None, :]
    order = scores.argsort(dim=1, stable=True)
    for r in range(d_out):
        weight[r, order[r, : int(round(float(s[r]) * d_in))]] = 0


def brute_objective(model, seqs, weights, plan, masks: str, reference: str):
    """M(D) and δ for `plan`, block by block: blocks before b masked, block b dense then masked.

    masks "ranked": Wanda on the dense model's unweighted norms; "exact": Wanda on the norms of
    the current stream (blocks before b masked). reference "stream": a^dense from block b dense on
    that stream; "cached": from the dense model. Profiles weighted by `weights`.
    """
    work = copy.deepcopy(model)
    adapter = adapter_for(work)
    dense_all = weighted_sq(work, seqs, None)
    dense_w = weighted_sq(work, seqs, weights)
    total, deltas = 0.0, {}
    for b, layer in enumerate(adapter.layers(work)):
        lins = adapter.linears(layer)
        keys = {n: f"layers.{b}.{n}" for n in lins}
        here_all = dense_all if masks == "ranked" else weighted_sq(work, seqs, None)
        here_w = dense_w if reference == "cached" else weighted_sq(work, seqs, weights)
        for n, lin in lins.items():
            target = plan.target(b, n, lin.weight)
            wanda_mask_(lin.weight.data, here_all[keys[n]].sqrt(), target)
        after = weighted_sq(work, seqs, weights)
        for k in keys.values():
            a_d, a_s = here_w[k].sqrt(), after[k].sqrt()
            total += term(a_d, a_s)
            deltas[k] = a_d - a_s
    return total, deltas


MODES = [("ranked", "stream"), ("ranked", "cached"), ("exact", "stream")]


@pytest.mark.parametrize(("masks", "reference"), MODES)
def test_ragged_weighted_search_equals_pooled_per_sequence_brute_force(masks, reference):
    """Every candidate's objective, and so the chosen λ, equal the brute force that pools the
    length groups (2 × 24 corpus, answers of 17 and 11 tokens) run one sequence at a time."""
    model = tiny_model("llama", seed=4)
    batches, weights = ragged()
    seqs = [row for b in batches for row in b]
    seq_w = [row for w in weights for row in w]
    adapter = adapter_for(model)
    shapes = layer_shapes(model, adapter)
    run = RunContext(model, adapter, batches, progress=False)
    lambdas = (0.02, 0.12, 0.25)
    settings = SearchSettings(
        row_step=False,
        block_lambdas=lambdas,
        bound=False,
        fast_masks=masks == "ranked",
        dense_reference=reference,
    )
    _, log = neuroal_search(run, get_pruner("wanda"), UNSTRUCTURED, shapes, 0.6, settings, weights)
    got = {c["lambda"]: c["objective"] for c in log["block_step"]["candidates"]}
    want = {}
    for lam in lambdas:
        plan = make_plan(shapes, ramp_sparsity(3, 0.6, lam, block_sizes(shapes)))
        want[lam], _ = brute_objective(model, seqs, seq_w, plan, masks, reference)
    assert got == pytest.approx(want, rel=1e-5)
    ordered = sorted(want.values())
    assert ordered[1] - ordered[0] > 1e-3 * ordered[0]  # the choice is not a near tie
    assert log["block_step"]["chosen_lambda"] == min(want, key=want.get)
    assert log["search_windows"] == 5 and log["search_tokens"] == 2 * 24 + 17 + 11 + 17
    assert log["search_scored_tokens"] == 2 * 24 + (17 - 9) + (11 - 4) + (17 - 12)


def test_weighted_deltas_feed_the_row_step():
    """δ = a^dense − a^sparse per Linear, weighted, equals the brute force (the row step's input)."""
    model = tiny_model("qwen2", seed=4)
    batches, weights = ragged()
    seqs = [row for b in batches for row in b]
    seq_w = [row for w in weights for row in w]
    adapter = adapter_for(model)
    shapes = layer_shapes(model, adapter)
    run = RunContext(model, adapter, batches, progress=False)
    plan = make_plan(shapes, ramp_sparsity(3, 0.6, 0.1, block_sizes(shapes)))
    ranks = score_ranks(run, get_pruner("wanda"))
    res = alignment_objective(run, ranked_prune(ranks, plan.target), weights=weights)
    total, deltas = brute_objective(model, seqs, seq_w, plan, "ranked", "stream")
    assert res.objective == pytest.approx(total, rel=1e-5)
    for k, d in deltas.items():
        assert torch.allclose(res.deltas[k], d, rtol=1e-4, atol=1e-4 * float(d.abs().max())), k


def test_weights_change_the_objective_and_ones_do_not():
    """All-ones weights on ragged batches give the unweighted numbers; answer weights differ."""
    model = tiny_model("llama", seed=4)
    batches, weights = ragged()
    adapter = adapter_for(model)
    shapes = layer_shapes(model, adapter)
    run = RunContext(model, adapter, batches, progress=False)
    plan = make_plan(shapes, ramp_sparsity(3, 0.6, 0.1, block_sizes(shapes)))
    prune = ranked_prune(score_ranks(run, get_pruner("wanda")), plan.target)
    plain = alignment_objective(run, prune).objective
    ones = alignment_objective(run, prune, weights=[torch.ones(b.shape) for b in batches])
    answers = alignment_objective(run, prune, weights=weights).objective
    assert ones.objective == pytest.approx(plain, rel=1e-6)
    assert abs(answers - plain) > 1e-3 * plain


# --- the search subset ------------------------------------------------------------------------


def test_subset_of_one_length_is_the_first_windows_as_before():
    windows = torch.arange(7 * 5).reshape(7, 5)
    sub, w = search_subset(list(windows.split(3)), None, 5)
    assert [b.tolist() for b in sub] == [windows[:3].tolist(), windows[3:5].tolist()]
    assert w is None
    ones = [torch.ones(b.shape) for b in windows.split(3)]
    assert search_subset(list(windows.split(3)), ones, 5)[1] is None  # all-ones: unweighted


def test_subset_of_several_lengths_spreads_over_the_set_and_groups_lengths():
    corpus = torch.arange(4 * 6).reshape(4, 6)  # rows 0-3 (length 6), then answers 4-9
    answers = [torch.full((1, t), 100 + k) for k, t in enumerate((3, 5, 3, 3, 5, 4))]
    batches = [*corpus.split(2), *answers]
    weights = [torch.ones(b.shape) for b in batches]
    weights[2] = torch.tensor([[0.0, 1.0, 1.0]])
    sub, sub_w = search_subset(batches, weights, 5)
    # picks i·10//5: sequences 0, 2, 4, 6, 8 -> corpus 0 and 2, answers 0, 2 and 4
    assert [b.tolist() for b in sub] == [
        [corpus[0].tolist(), corpus[2].tolist()],
        [[100] * 3, [102] * 3],
        [[104] * 5],
    ]
    assert [w.tolist() for w in sub_w] == [[[1.0] * 6] * 2, [[0, 1, 1], [1, 1, 1]], [[1.0] * 5]]
    assert sum(b.shape[0] for b in search_subset(batches, weights, 50)[0]) == 10


def test_a_subset_without_answer_tokens_is_one_line():
    batches = [torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)]
    weights = [torch.zeros(1, 3), torch.zeros(1, 4)]
    with pytest.raises(PrunekitError, match="no weighted"):
        search_subset(batches, weights, 2)


# --- corpus windows: the λs and plans recorded before ragged support ---------------------------

IDS = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(11))
# (method, arch, batch size, options) -> (block λ, row λ, objective, plan digest), recorded with
# the code before this change (commit 4b386ef) on an avx512 machine; λs and plans match exactly
# elsewhere, the objective to float32 rounding
RECORDED = {
    ("wanda", "llama", 4, (("samples", 4),)): (
        0.08,
        0.15,
        "0x1.6938f9462646ap-9",
        "f7eaa1b4d5953e6c",
    ),
    ("wanda", "qwen2", 4, (("samples", 6), ("grid", "coarse"))): (
        0.08,
        0.08,
        "0x1.1e0b696347c00p-9",
        "25120f347de08cb5",
    ),
    (
        "wanda",
        "llama",
        3,
        (("samples", 5), ("grid", "coarse"), ("dense_reference", "cached")),
    ): (0.08, 0.15, "0x1.cfd325fca8515p-9", "ce18f2abfa6a9296"),
    ("wanda", "llama", 4, (("samples", 4), ("grid", "coarse"), ("fast_masks", False))): (
        0.08,
        0.04,
        "0x1.749943448eb12p-9",
        "0b3e0c769fe3d08d",
    ),
    (
        "sparsegpt",
        "qwen2",
        4,
        (
            ("samples", 4),
            ("search_method", "sparsegpt"),
            ("block_lambdas", (0.05, 0.2)),
            ("row_lambdas", (0.0, 0.1)),
        ),
    ): (0.05, 0.0, "0x1.ac6e7f9435da8p-9", "e5023f9cf6b1ae96"),
}


def fingerprint(plan, search: dict) -> tuple:
    h = hashlib.sha256()
    for k in sorted(plan.layer):
        h.update(repr(plan.layer[k]).encode())
        if k in plan.rows:
            h.update(plan.rows[k].double().numpy().tobytes())
    return (
        search["block_step"]["chosen_lambda"],
        search.get("row_step", {}).get("chosen_lambda"),
        search["objective"],
        h.hexdigest()[:16],
    )


@pytest.mark.parametrize("case", list(RECORDED), ids=lambda c: f"{c[0]}-{c[1]}-b{c[2]}")
def test_corpus_windows_give_the_recorded_lambdas_and_plans(case):
    method, arch, batch, options = case
    run = RunContext.of(tiny_model(arch, seed=2), list(IDS.split(batch)), progress=False)
    opts = check_allocation("neuroal", dict(options), UNSTRUCTURED)
    ones = [torch.ones(b.shape) for b in run.batches]  # a corpus window's weights: all 1
    for weights in (None, ones):
        plan, rep = build_allocation(
            "neuroal", opts, run, get_pruner(method), UNSTRUCTURED, 0.6, weights
        )
        block, row, objective, plan_digest = fingerprint(plan, rep["search"])
        want = RECORDED[case]
        assert (block, row, plan_digest) == (want[0], want[1], want[3])
        # float32 sums differ in the last bits between CPUs (AVX2 vs AVX-512): ~1e-7 relative
        assert objective == pytest.approx(float.fromhex(want[2]), rel=1e-5)
