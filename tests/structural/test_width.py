"""FFN width pruning: exact at keep=1, equals a hand-scored, hand-sliced model, reloads in transformers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_model
from prunekit.calibration.context import RunContext
from prunekit.config.width import WidthConfig
from prunekit.errors import PrunekitError
from prunekit.structural.width import (
    activation_importance,
    keep_count,
    output_importance,
    prune_width,
    select_channels,
)


def _cfg(keep: float, criterion: str, multiple: int = 64) -> WidthConfig:
    return WidthConfig(ffn_keep=keep, criterion=criterion, multiple=multiple)


def _batches():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 128, (2, 12), generator=g) for _ in range(2)]


def _hand_slice(mlp, idx):
    mlp.gate_proj.weight.data = mlp.gate_proj.weight.data[idx].clone()
    mlp.up_proj.weight.data = mlp.up_proj.weight.data[idx].clone()
    mlp.down_proj.weight.data = mlp.down_proj.weight.data[:, idx].clone()


def test_keep_count_and_bad_keep():
    assert keep_count(4864, 1.0, 64) == 4864
    assert keep_count(4864, 0.9, 64) == 4352  # 4377.6 → 68.4 multiples → 68 × 64
    assert keep_count(64, 0.01, 32) == 32  # never below one multiple
    assert keep_count(10, 0.5) == 5
    for bad in (0, -0.1, 1.5, True):
        with pytest.raises(PrunekitError, match="ffn_keep must be in"):
            keep_count(64, bad)


def test_activation_importance_by_hand():
    gate = torch.tensor([[1.0, -2.0], [0.0, 1.0]])
    up = torch.tensor([[0.5, 0.0], [-1.0, 1.0]])
    down = torch.tensor([[1.0, -3.0], [2.0, 0.0]])  # columns are channels
    a_in, a_mid = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.5])
    # channel 0: (2+2) + (1+0) + (1+2)·1 = 8; channel 1: (0+1) + (2+1) + (3+0)·0.5 = 5.5
    assert activation_importance([gate, up], down, a_in, a_mid).tolist() == [8.0, 5.5]
    # output: ‖down_:,j‖₂ · a_mid,j = √5·1 and 3·0.5
    torch.testing.assert_close(output_importance(down, a_mid), torch.tensor([5**0.5, 1.5]))
    assert select_channels(torch.tensor([3.0, 1.0, 3.0, 2.0]), 2).tolist() == [0, 2]


@torch.no_grad()
@pytest.mark.parametrize("criterion", ["activation", "taylor"])
def test_keep_one_is_exact(criterion):
    model = tiny_model("qwen2")
    ids = torch.randint(0, 128, (2, 10))
    before = model(ids).logits
    prune_width(RunContext.of(model, _batches(), progress=False), _cfg(1.0, criterion, 32))
    torch.testing.assert_close(model(ids).logits, before)


def _mid_inputs(model, batch):
    """Inputs of every layer's MLP and down_proj for one batch (full forward with hooks)."""
    seen = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        hooks.append(
            layer.mlp.gate_proj.register_forward_hook(
                lambda _m, inp, _o, i=i: seen.__setitem__(("in", i), inp[0])
            )
        )
        hooks.append(
            layer.mlp.down_proj.register_forward_hook(
                lambda _m, inp, _o, i=i: seen.__setitem__(("mid", i), inp[0])
            )
        )
    model(batch)
    for h in hooks:
        h.remove()
    return seen


@torch.no_grad()
@pytest.mark.parametrize(
    ("arch", "criterion"), [("llama", "activation"), ("gemma3", "activation"), ("qwen2", "output")]
)
def test_activation_equals_hand_scored_sequential_slicing(arch, criterion, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model(arch)
    ref = copy.deepcopy(model)
    batches = _batches()
    k = 32
    for i, layer in enumerate(ref.model.layers):  # block i scored after blocks < i were pruned
        a_in = torch.zeros(32)
        a_mid = torch.zeros(64)
        for b in batches:
            seen = _mid_inputs(ref, b)
            a_in += seen[("in", i)].reshape(-1, 32).pow(2).sum(0)
            a_mid += seen[("mid", i)].reshape(-1, 64).pow(2).sum(0)
        a_in, a_mid = a_in.sqrt(), a_mid.sqrt()
        mlp = layer.mlp
        if criterion == "output":
            scores = torch.tensor(
                [
                    sum(mlp.down_proj.weight[r, j] ** 2 for r in range(32)) ** 0.5 * a_mid[j]
                    for j in range(64)
                ]
            )
        else:
            scores = torch.tensor(
                [
                    sum(
                        abs(mlp.gate_proj.weight[j, c]) * a_in[c]
                        + abs(mlp.up_proj.weight[j, c]) * a_in[c]
                        for c in range(32)
                    )
                    + sum(abs(mlp.down_proj.weight[r, j]) for r in range(32)) * a_mid[j]
                    for j in range(64)
                ]
            )
        _hand_slice(mlp, torch.sort(torch.topk(scores, k).indices).values)
    report = prune_width(RunContext.of(model, batches, progress=False), _cfg(0.5, criterion, 32))
    assert report["intermediate_size_after"] == model.config.intermediate_size == 32
    ids = torch.randint(0, 128, (2, 10))
    torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-5)
    assert reloaded.generate(
        ids[:1, :3], max_new_tokens=4, min_new_tokens=4, do_sample=False
    ).shape == (1, 7)


def test_taylor_equals_autograd_mask_gradient():
    """Σ a·∂L/∂a equals ∂L/∂m_j for a multiplicative mask m = 1 on the channel (brute force)."""
    model = tiny_model("llama")
    ref = copy.deepcopy(model)
    batches = _batches()
    masks = [torch.ones(64, requires_grad=True) for _ in ref.model.layers]
    for layer, m in zip(ref.model.layers, masks):
        layer.mlp.down_proj.register_forward_pre_hook(lambda _mod, args, m=m: (args[0] * m,))
    for b in batches:
        logits = ref(b).logits[:, :-1]
        F.cross_entropy(logits.reshape(-1, 128), b[:, 1:].reshape(-1)).backward()
    k = 16
    for layer, m in zip(ref.model.layers, masks):
        _hand_slice(layer.mlp, torch.sort(torch.topk(m.grad.abs(), k).indices).values)
        layer.mlp.down_proj._forward_pre_hooks.clear()
    prune_width(RunContext.of(model, batches, progress=False), _cfg(0.25, "taylor", 16))
    ids = torch.randint(0, 128, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # restored as it was


def test_bad_width_input():
    with pytest.raises(PrunekitError, match="ffn_keep must be a number in"):
        WidthConfig.check({"ffn_keep": 0.0, "criterion": "activation"})
    with pytest.raises(PrunekitError, match="criterion 'random' is not one of"):
        WidthConfig.check({"ffn_keep": 0.5, "criterion": "random"})
