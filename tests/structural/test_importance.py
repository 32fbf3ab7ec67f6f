"""Importances: hand values, the fused formula, and Taylor scores against brute-force derivatives."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_model
from prunekit.calibration.context import RunContext
from prunekit.models.adapters import adapter_for
from prunekit.structural.groups import ChannelGroups, HeadGroups
from prunekit.structural.importance import (
    REGISTRY,
    Fused,
    ParamMix,
    TaylorElement,
    TaylorVector,
    Terms,
    accumulate_gradients,
    group_terms,
    kind_scores,
)

WG = torch.tensor([[1.0, -3.0, 0.5], [-2.0, 2.0, 0.0]])
W2F = torch.tensor([[4.0, 2.0, 1.0], [0.0, 8.0, 2.0]])


def test_single_metrics_on_hand_values():
    terms = Terms(WG, W2F)
    assert TaylorVector().metrics(terms).flatten().tolist() == [1.5, 0.0]
    assert TaylorElement().metrics(terms).flatten().tolist() == [4.5, 4.0]
    # |1 − 2| + |−3 − 1| + |0.5 − 0.5| = 5;  |−2 − 0| + |2 − 4| + |0 − 1| = 5
    assert ParamMix().metrics(terms).flatten().tolist() == [5.0, 5.0]
    assert set(REGISTRY) == {"fused", "taylor_vector", "taylor_element", "param_mix"}


def test_fused_equals_its_formula_on_hand_values():
    metrics = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]], dtype=torch.float64)
    # σ₁² = mean(1, 3, 5) = 3, σ₂² = mean(2, 4, 0) = 2
    const = math.log(math.sqrt(3)) + math.log(math.sqrt(2))
    want = [1 / 6 + 2 / 4 + const, 3 / 6 + 4 / 4 + const, 5 / 6 + 0 + const]
    fused = Fused()
    torch.testing.assert_close(fused.combine(metrics), torch.tensor(want, dtype=torch.float64))
    info = fused.info(metrics)
    assert info["sigma"] == pytest.approx({"taylor_vector": 3**0.5, "taylor_element": 2**0.5})
    assert fused.offset(metrics) == pytest.approx(const)

    # the σ that minimise Σ_g I(g) over σ are the closed form's (checked numerically)
    def total(s1, s2):
        return float(
            sum(metrics[:, 0]) / (2 * s1**2) + sum(metrics[:, 1]) / (2 * s2**2)
        ) + 3 * math.log(s1 * s2)

    best = total(3**0.5, 2**0.5)
    for d in (0.9, 1.1):
        assert total(3**0.5 * d, 2**0.5) > best and total(3**0.5, 2**0.5 * d) > best
    # per block, fused metrics are the two Taylor columns side by side
    cols = fused.metrics(Terms(WG)).tolist()
    assert cols == [[1.5, 4.5], [0.0, 4.0]]


def _batches():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 128, (2, 12), generator=g) for _ in range(2)]


def _loss(model, batches) -> torch.Tensor:
    total = 0
    for b in batches:
        logits = model(b).logits[:, :-1]
        total = total + F.cross_entropy(logits.reshape(-1, 128), b[:, 1:].reshape(-1))
    return total


def _by_hand_entries(layer, kind: str, g: int):
    """(parameter, index) of every entry a group owns, written out without groups.py."""
    if kind == "heads":  # kv head g: query heads 2g, 2g+1 (head_dim 8), k/v head g
        q = slice(16 * g, 16 * (g + 1))
        kv = slice(8 * g, 8 * (g + 1))
        a = layer.self_attn
        return [
            (a.q_proj.weight, (q,)),
            (a.k_proj.weight, (kv,)),
            (a.v_proj.weight, (kv,)),
            (a.o_proj.weight, (slice(None), q)),
        ]
    m = layer.mlp
    return [
        (m.gate_proj.weight, (slice(g, g + 1),)),
        (m.up_proj.weight, (slice(g, g + 1),)),
        (m.down_proj.weight, (slice(None), slice(g, g + 1))),
    ]


def _scaled_group_derivative(model, kind: str, g: int, layer_i: int = 1) -> float:
    """dL/dα at α = 1 with one group's entries multiplied by α (functional call, autograd on α)."""
    from torch.func import functional_call

    alpha = torch.ones((), dtype=torch.float64, requires_grad=True)
    names = {id(p): n for n, p in model.named_parameters()}
    params = {n: p.detach() for n, p in model.named_parameters()}
    for w, idx in _by_hand_entries(model.model.layers[layer_i], kind, g):
        mask = torch.zeros_like(w)
        mask[idx] = 1
        params[names[id(w)]] = w.detach() * (1 + (alpha - 1) * mask)
    total = 0
    for b in _batches():
        logits = functional_call(model, params, (b,)).logits[:, :-1]
        total = total + F.cross_entropy(logits.reshape(-1, 128), b[:, 1:].reshape(-1))
    (d,) = torch.autograd.grad(total, alpha)
    return float(d)


@pytest.mark.parametrize("kind", ["heads", "ffn"])
def test_taylor_scores_equal_autograd_per_group(kind):
    model = tiny_model("llama").double()
    adapter = adapter_for(model)
    batches = _batches()
    stats = accumulate_gradients(RunContext(model, adapter, batches, progress=False), fisher=True)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # restored
    ref = copy.deepcopy(model)
    ref.zero_grad()
    _loss(ref, batches).backward()
    per_batch = []
    for b in batches:  # per-batch gradients for the Fisher diagonal
        ref.zero_grad()
        _loss(ref, [b]).backward()
        per_batch.append({n: p.grad.clone() for n, p in ref.named_parameters()})
    ref.zero_grad()
    _loss(ref, batches).backward()
    group_kind = HeadGroups(adapter) if kind == "heads" else ChannelGroups(adapter)
    layer_i = 1
    vec = kind_scores(adapter.layers(model), group_kind, TaylorVector(), stats)[0][layer_i]
    elem = kind_scores(adapter.layers(model), group_kind, TaylorElement(), stats)[0][layer_i]
    mix = kind_scores(adapter.layers(model), group_kind, ParamMix(), stats)[0][layer_i]
    names = {id(p): n for n, p in ref.named_parameters()}
    for g in (0, 1):
        entries = _by_hand_entries(ref.model.layers[layer_i], kind, g)
        wg = [(w * w.grad)[idx] for w, idx in entries]
        fisher = [sum(pb[names[id(w)]] ** 2 for pb in per_batch)[idx] for w, idx in entries]
        w2f = [(w.detach()[idx] ** 2) * f for (w, idx), f in zip(entries, fisher)]
        assert float(vec[g]) == pytest.approx(
            abs(float(sum(t.detach().sum() for t in wg))), rel=1e-6
        )
        assert float(elem[g]) == pytest.approx(
            float(sum(t.detach().abs().sum() for t in wg)), rel=1e-6
        )
        mixed = sum((t - 0.5 * u).abs().sum() for t, u in zip(wg, w2f))
        assert float(mix[g]) == pytest.approx(float(mixed.detach()), rel=1e-6)
        # Σ W·g over the group = dL/dα where the group's entries are scaled by α (at α = 1)
        assert float(vec[g]) == pytest.approx(abs(_scaled_group_derivative(ref, kind, g)), rel=1e-6)


@torch.no_grad()
def test_biases_are_part_of_a_group():
    from models.tiny_families import tiny_family_model

    model = tiny_family_model("qwen2").double()  # q/k/v biases (initialised to zero)
    adapter = adapter_for(model)
    with torch.no_grad():
        for layer in adapter.layers(model):
            for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                p.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    stats = accumulate_gradients(RunContext(model, adapter, _batches(), progress=False))
    layer = adapter.layers(model)[0]
    terms = group_terms(layer, HeadGroups(adapter), stats, False)
    a = layer.self_attn
    bias_wg = (a.q_proj.bias * stats.grad[a.q_proj.bias])[:16].sum() + sum(
        (p.bias * stats.grad[p.bias])[:8].sum() for p in (a.k_proj, a.v_proj)
    )
    weight_wg = (
        sum(
            (w * stats.grad[w])[idx].sum()
            for w, idx in (
                (a.q_proj.weight, slice(0, 16)),
                (a.k_proj.weight, slice(0, 8)),
                (a.v_proj.weight, slice(0, 8)),
            )
        )
        + (a.o_proj.weight * stats.grad[a.o_proj.weight])[:, :16].sum()
    )
    assert abs(float(bias_wg)) > 1e-3 * abs(float(weight_wg))  # large enough to show
    want = float((bias_wg + weight_wg).detach())
    assert float(terms.wg[0].sum()) == pytest.approx(want, rel=1e-6)
    assert terms.wg.shape == (2, 16 * 33 + 8 * 33 * 2 + 32 * 16)


def test_fused_sigma_is_one_per_metric_over_every_blocks_groups():
    """σ_m² = mean of metric m over the kind's groups in all blocks (not per block), by hand."""
    model = tiny_model("llama").double()
    adapter = adapter_for(model)
    stats = accumulate_gradients(RunContext(model, adapter, _batches(), progress=False))
    layers = adapter.layers(model)
    for kind in (HeadGroups(adapter), ChannelGroups(adapter)):
        vec = [s.tolist() for s in kind_scores(layers, kind, TaylorVector(), stats)[0]]
        elem = [s.tolist() for s in kind_scores(layers, kind, TaylorElement(), stats)[0]]
        var_v = statistics.fmean(x for block in vec for x in block)
        var_e = statistics.fmean(x for block in elem for x in block)
        # blocks differ, so a per-block σ would give other scores
        block_means = [statistics.fmean(block) for block in vec]
        assert max(block_means) > 1.2 * min(block_means)
        const = math.log(math.sqrt(var_v)) + math.log(math.sqrt(var_e))
        fused, info, offset = kind_scores(layers, kind, Fused(), stats)
        assert offset == pytest.approx(const, rel=1e-9)
        assert info["sigma"]["taylor_vector"] == pytest.approx(math.sqrt(var_v), rel=1e-9)
        for got, v, e in zip(fused, vec, elem):
            want = [a / (2 * var_v) + b / (2 * var_e) + const for a, b in zip(v, e)]
            assert got.tolist() == pytest.approx(want, rel=1e-9)


def _by_hand_fused_entries(layer, kind: str, g: int) -> list[tuple[torch.Tensor, tuple]]:
    """Phi-3's fused projections: qkv rows q 0-31 | k 32-47 | v 48-63 (4 query heads over 2 kv
    heads, head_dim 8), gate_up rows gate 0-63 | up 64-127; written out without groups.py."""
    a, m = layer.self_attn, layer.mlp
    if kind == "heads":  # kv head g: query heads 2g, 2g+1, k head g, v head g
        q = slice(16 * g, 16 * (g + 1))
        k, v = slice(32 + 8 * g, 40 + 8 * g), slice(48 + 8 * g, 56 + 8 * g)
        return [
            (a.qkv_proj.weight, (q,)),
            (a.qkv_proj.weight, (k,)),
            (a.qkv_proj.weight, (v,)),
            (a.o_proj.weight, (slice(None), q)),
        ]
    return [
        (m.gate_up_proj.weight, (g,)),
        (m.gate_up_proj.weight, (64 + g,)),
        (m.down_proj.weight, (slice(None), g)),
    ]


@torch.no_grad()
def test_fused_projections_are_gathered_from_the_right_rows():
    from models.tiny_families import tiny_family_model

    model = tiny_family_model("phi3").double()  # fused qkv_proj and gate_up_proj
    adapter = adapter_for(model)
    stats = accumulate_gradients(RunContext(model, adapter, _batches(), progress=False))
    layer = adapter.layers(model)[1]
    for kind, group_kind, n in (
        ("heads", HeadGroups(adapter), 2),
        ("ffn", ChannelGroups(adapter), 64),
    ):
        wg = group_terms(layer, group_kind, stats, False).wg
        assert wg.shape[0] == n
        for g in range(n):
            want = torch.cat(
                [
                    (w.float() * stats.grad[w])[idx].flatten()
                    for w, idx in _by_hand_fused_entries(layer, kind, g)
                ]
            )
            # order inside a group is free (every metric sums over it): compare as multisets
            assert torch.equal(torch.sort(wg[g]).values, torch.sort(want).values), (kind, g)
