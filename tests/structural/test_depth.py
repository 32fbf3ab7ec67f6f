"""Depth pruning: surgery equals running the model without the layer; greedy scores equal brute force."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from structural_calls import ctx, depth

from conftest import skip_layers, tiny_model
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.structural.depth import (
    angular_sum,
    cosine_sum,
    greedy_depth,
    kl_sum,
    plot_depth_scores,
    remove_layers,
)

ARCHS = ["llama", "qwen2", "gemma3"]


def _batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (2, 12), generator=g) for _ in range(2)]


@torch.no_grad()
@pytest.mark.parametrize("arch", ARCHS)
def test_remove_layers_equals_skipping_and_reloads(arch, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model(arch)
    ids = torch.randint(0, 128, (2, 10))
    drop = [1]
    expected = skip_layers(model, drop)(ids).logits
    remove_layers(model, adapter_for(model), drop)
    assert model.config.num_hidden_layers == len(model.model.layers)
    torch.testing.assert_close(model(ids).logits, expected)
    if arch == "gemma3":  # per-layer list filtered in step with the layers
        assert model.config.layer_types == [
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ]
    # KV cache indexed by layer_idx: cached and uncached greedy decoding agree
    prompt = ids[:1, :4]
    a = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    b = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(a, b)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(ids).logits, expected)


def test_pure_scores_by_hand():
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    o = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert cosine_sum(h, o) == (pytest.approx(1.0), 2)  # 0 + 1
    assert angular_sum(h, o) == (pytest.approx(0.5), 2)  # 0 + (π/2)/π
    sixty = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]]), torch.tensor([[[1.0, 3**0.5], [1.0, 0.0]]])
    assert angular_sum(*sixty) == (pytest.approx(1 / 3 + 1), 2)  # 60° and 180°
    assert cosine_sum(h, o, last_token=True) == (pytest.approx(1.0), 1)
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    logq = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * torch.log(torch.tensor(2.0)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    assert kl_sum(logp, logq)[0] == pytest.approx(float(expected))


@torch.no_grad()
def _brute_kl(model, batches, removed, candidate, last_token=False):
    p_model, q_model = skip_layers(model, removed), skip_layers(model, [*removed, candidate])
    total = count = 0
    for b in batches:
        lp = F.log_softmax(p_model(b).logits.float(), -1)
        lq = F.log_softmax(q_model(b).logits.float(), -1)
        if last_token:
            lp, lq = lp[:, -1], lq[:, -1]
        kl = (lp.exp() * (lp - lq)).sum(-1)  # by hand, not with kl_sum
        total, count = total + float(kl.sum()), count + kl.numel()
    return total / count


def _distance(h_in, h_out, criterion):
    """Per-token 1 − cos or arccos(cos)/π in float64, by hand (not with cosine_sum/angular_sum)."""
    a, b = h_in.double().flatten(0, -2), h_out.double().flatten(0, -2)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return 1 - cos if criterion == "cosine" else torch.arccos(cos.clamp(-1, 1)) / torch.pi


@torch.no_grad()
def _brute_cos(model, batches, removed, candidate, criterion="cosine"):
    ref = skip_layers(model, removed)
    total = count = 0
    for b in batches:
        hs = ref(b, output_hidden_states=True).hidden_states
        # hidden_states[i] is the input of layer i; the last one has the final norm applied
        out = hs[candidate + 1] if candidate + 1 < len(hs) - 1 else None
        if out is None:
            captured = {}
            layer = ref.model.layers[candidate]
            handle = layer.register_forward_hook(lambda _m, _i, o, c=captured: c.setdefault("o", o))
            ref(b)
            handle.remove()
            out = captured["o"][0] if isinstance(captured["o"], tuple) else captured["o"]
        d = _distance(hs[candidate], out, criterion)
        total, count = total + float(d.sum()), count + d.numel()
    return total / count


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("last_token", [False, True])
def test_greedy_kl_matches_brute_force_each_round(arch, last_token):
    model = tiny_model(arch)
    batches = _batches()
    result = greedy_depth(ctx(model, batches), depth(2, "kl", last_token=last_token))
    assert len(result.rounds) == 2 and len(result.removed) == 2
    for r, scores in enumerate(result.rounds):
        removed = result.removed[:r]
        for cand, score in scores.items():
            assert score == pytest.approx(
                _brute_kl(model, batches, removed, cand, last_token), rel=1e-4, abs=1e-7
            )
        assert result.removed[r] == min(scores, key=scores.get)
        assert set(scores) == set(range(len(model.model.layers))) - set(removed)


@pytest.mark.parametrize("criterion", ["cosine", "angular"])
def test_greedy_cosine_and_angular_match_brute_force_each_round(criterion):
    model = tiny_model("qwen2")
    batches = _batches(1)
    result = greedy_depth(ctx(model, batches), depth(2, criterion))
    for r, scores in enumerate(result.rounds):
        for cand, score in scores.items():
            assert score == pytest.approx(
                _brute_cos(model, batches, result.removed[:r], cand, criterion), rel=1e-4
            )
        assert result.removed[r] == min(scores, key=scores.get)


def test_bad_depth_input(tmp_path):
    model = tiny_model("llama")  # 3 layers
    ad = adapter_for(model)
    with pytest.raises(PrunekitError, match="at least one must stay"):
        greedy_depth(ctx(model, _batches()), depth(3, "kl"))
    with pytest.raises(PrunekitError, match="at least one must stay"):
        remove_layers(model, ad, [0, 1, 2])
    with pytest.raises(PrunekitError, match="criterion 'entropy' is not one of"):
        greedy_depth(ctx(model, _batches()), depth(1, "entropy"))
    result = greedy_depth(ctx(model, _batches()), depth(2, "angular"))
    plot_depth_scores(result, tmp_path / "depth.png")
    assert (tmp_path / "depth.png").stat().st_size > 0
