"""Head-group and channel surgery for every family: exact when nothing goes, a masked dense model otherwise."""

from __future__ import annotations

import copy

import pytest
import torch

from models.tiny_families import FAMILIES, tiny_family_model
from prunekit.export.widths import layer_widths
from prunekit.models.adapters import adapter_for
from prunekit.reports.report import param_counts
from prunekit.structural.groups import ChannelGroups, HeadGroups, sync_configs

IDS = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(1))
# tiny configs: 4 query heads over 2 kv heads of head_dim 8, MLP width 64
PER_KV, HEAD_DIM, WIDTH = 2, 8, 64


@torch.no_grad()
@pytest.mark.parametrize("family", list(FAMILIES))
def test_keeping_every_group_is_exact(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    before = model(IDS).logits
    for layer in adapter.layers(model):
        for kind in (HeadGroups(adapter), ChannelGroups(adapter)):
            kind.keep(layer, torch.arange(kind.count(layer)))
    assert sync_configs(model, adapter)
    torch.testing.assert_close(model(IDS).logits, before, rtol=0, atol=0)


def _mask_dense(model, adapter, kept_heads, kept_channels) -> None:
    """Zero the output columns of removed query heads and the down columns of removed channels."""
    for layer, heads, channels in zip(adapter.layers(model), kept_heads, kept_channels):
        o = layer.get_submodule(adapter.attention.output).weight
        for h in set(range(2)) - set(heads.tolist()):
            o[:, h * PER_KV * HEAD_DIM : (h + 1) * PER_KV * HEAD_DIM] = 0
        down = layer.get_submodule(adapter.mlp.output).weight
        gone = sorted(set(range(WIDTH)) - set(channels.tolist()))
        down[:, gone] = 0


@torch.no_grad()
@pytest.mark.parametrize("family", list(FAMILIES))
def test_removal_equals_masked_dense_model(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    dense = copy.deepcopy(model)
    g = torch.Generator().manual_seed(2)
    layers = adapter.layers(model)
    kept_heads = [torch.tensor([1]), torch.tensor([0]), torch.tensor([0, 1])][: len(layers)]
    kept_heads += [torch.tensor([1])] * (len(layers) - len(kept_heads))
    kept_channels = [
        torch.sort(torch.randperm(WIDTH, generator=g)[:k]).values
        for k in (40, 17, 64, 33)[: len(layers)]
    ]
    for layer, heads, channels in zip(layers, kept_heads, kept_channels):
        HeadGroups(adapter).keep(layer, heads)
        ChannelGroups(adapter).keep(layer, channels)
    assert not sync_configs(model, adapter)
    _mask_dense(dense, adapter, kept_heads, kept_channels)
    torch.testing.assert_close(model(IDS).logits, dense(IDS).logits, rtol=1e-5, atol=1e-5)
    shapes = layer_widths(model, adapter)
    assert [s.kv_heads for s in shapes] == [len(h) for h in kept_heads]
    assert [s.heads for s in shapes] == [PER_KV * len(h) for h in kept_heads]
    assert [s.mlp for s in shapes] == [len(c) for c in kept_channels]
    # the KV cache path (generation) runs on per-block head counts and agrees with full forwards
    out = model.generate(IDS[:1, :4], max_new_tokens=4, min_new_tokens=4, do_sample=False)
    ref = IDS[:1, :4]
    for _ in range(4):
        ref = torch.cat([ref, dense(ref).logits[:, -1:].argmax(-1)], 1)
    assert out.tolist() == ref.tolist()


@torch.no_grad()
@pytest.mark.parametrize("family", list(FAMILIES))
def test_group_cost_is_the_parameters_one_group_removes(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    layer = adapter.layers(model)[0]
    for kind in (HeadGroups(adapter), ChannelGroups(adapter)):
        cost, n = kind.cost(layer), kind.count(layer)
        before = param_counts(model)["total"]
        kind.keep(layer, torch.arange(1, n))
        assert before - param_counts(model)["total"] == cost
    hidden = model.config.hidden_size
    bias = 1 if family == "starcoder2" else 0  # starcoder2: every projection has a bias
    q_rows, kv_rows = PER_KV * HEAD_DIM, HEAD_DIM
    qkv_bias = bias or (1 if family == "qwen2" else 0)  # qwen2: q/k/v biases only
    head_cost = (q_rows + 2 * kv_rows) * (hidden + qkv_bias) + q_rows * hidden
    assert HeadGroups(adapter).cost(adapter.layers(model)[1]) == head_cost
    mlp_inputs = 1 if family == "starcoder2" else 2
    assert (
        ChannelGroups(adapter).cost(adapter.layers(model)[1])
        == mlp_inputs * (hidden + bias) + hidden
    )


@pytest.mark.parametrize("family", ["phi3", "llama", "gemma3"])
def test_per_block_configs_follow_the_shapes(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    dense_heads = model.config.num_attention_heads
    layers = adapter.layers(model)
    HeadGroups(adapter).keep(layers[0], torch.tensor([1]))
    ChannelGroups(adapter).keep(layers[1], torch.arange(10))
    assert not sync_configs(model, adapter)
    assert model.config.num_attention_heads == dense_heads  # the dense config is left alone
    attn0 = HeadGroups(adapter).attention(layers[0])
    assert attn0.config is not model.config
    assert (attn0.config.num_attention_heads, attn0.config.num_key_value_heads) == (2, 1)
    assert attn0.config.intermediate_size == WIDTH
    mlp1 = layers[1].get_submodule(adapter.mlp.output.rpartition(".")[0])
    if hasattr(mlp1, "config"):
        assert mlp1.config.intermediate_size == 10
    if hasattr(mlp1, "intermediate_size"):
        assert mlp1.intermediate_size == 10
    if hasattr(attn0, "num_key_value_heads"):
        assert attn0.num_key_value_heads == 1
    assert attn0.num_key_value_groups == PER_KV


def test_uniform_result_is_a_plain_config():
    model = tiny_family_model("phi3")  # no head_dim in the dense config: it must be written
    adapter = adapter_for(model)
    for layer in adapter.layers(model):
        HeadGroups(adapter).keep(layer, torch.tensor([0]))
        ChannelGroups(adapter).keep(layer, torch.arange(32))
    assert sync_configs(model, adapter)
    c = model.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.intermediate_size) == (2, 1, 32)
    assert c.head_dim == HEAD_DIM
    for layer in adapter.layers(model):
        assert HeadGroups(adapter).attention(layer).config is c
