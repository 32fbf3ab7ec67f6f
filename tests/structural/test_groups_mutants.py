"""Group slices by hand, and head groups where kv heads ≠ query heads per kv head: the tiny
families have 2 kv heads of 2 query heads each, so a swapped or added pair of counts passes there."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.models.adapters import adapter_for
from prunekit.reports.report import param_counts
from prunekit.structural.groups import HeadGroups, HeadShape, Part, sync_configs

# 6 query heads over 3 kv heads (2 per kv head), head_dim 4: hidden 24
KV, PER_KV, HEAD_DIM, HIDDEN = 3, 2, 4, 24
IDS = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))


def _model(family: str) -> nn.Module:
    """A 2-block llama or phi3 (fused qkv and gate_up) with 3 kv heads of 2 query heads each."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    shape = dict(
        vocab_size=64,
        hidden_size=HIDDEN,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=KV * PER_KV,
        num_key_value_heads=KV,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    cfg = LlamaConfig(**shape) if family == "llama" else Phi3Config(**shape, pad_token_id=0)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


def test_rows_gather_with_their_bias_entries():
    """dim 0: a group's rows flattened, then its bias entries."""
    weight = torch.arange(12.0).reshape(4, 3)
    part = Part("w", 0, torch.tensor([[0, 2], [1, 3]]))
    assert part.gather(weight).tolist() == [[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]]
    bias = torch.tensor([100.0, 101.0, 102.0, 103.0])
    assert part.gather(weight, bias).tolist() == [
        [0, 1, 2, 6, 7, 8, 100, 102],
        [3, 4, 5, 9, 10, 11, 101, 103],
    ]


def test_columns_gather_every_row_of_the_groups_columns():
    """dim 1: group g gets columns index[g] of every row (no bias: it belongs to the rows)."""
    weight = torch.arange(12.0).reshape(3, 4)
    part = Part("w", 1, torch.tensor([[0, 3], [1, 2]]))
    assert part.gather(weight).tolist() == [[0, 3, 4, 7, 8, 11], [1, 2, 5, 6, 9, 10]]
    assert part.gather(weight, torch.ones(3)).tolist() == part.gather(weight).tolist()


def test_part_size_counts_rows_with_bias_and_columns_over_the_outputs():
    """A 5 → 7 Linear: 3 rows cost 3·5 (+3 bias), 3 columns cost 3·7."""
    index = torch.zeros(2, 3, dtype=torch.long)
    with_bias, without = nn.Linear(5, 7), nn.Linear(5, 7, bias=False)
    assert Part("w", 0, index).size(with_bias) == 18
    assert Part("w", 0, index).size(without) == 15
    assert Part("w", 1, index).size(with_bias) == 21


def test_head_shape_multiplies_kv_heads_by_query_heads_per_kv_head():
    """3 kv heads of 2 query heads: 6 query heads (not 3 + 2)."""
    assert HeadShape(HEAD_DIM, KV, PER_KV).q_heads == 6
    assert HeadShape(8, 1, 7).q_heads == 7


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_uneven_heads_read_their_shape_slices_and_cost_by_hand(family):
    """shape, count, the parts' indices and a group's cost with 3 kv heads ≠ 2 per kv head."""
    model = _model(family)
    adapter = adapter_for(model)
    heads = HeadGroups(adapter)
    layer = adapter.layers(model)[0]
    assert heads.shape(layer) == HeadShape(HEAD_DIM, KV, PER_KV)
    assert heads.count(layer) == KV
    q = [list(range(8 * g, 8 * g + 8)) for g in range(KV)]  # 2 query heads × 4 rows
    kv = [list(range(4 * g, 4 * g + 4)) for g in range(KV)]
    parts = heads.parts(layer)
    if family == "phi3":  # qkv rows: q 0-23 | k 24-35 | v 36-47
        fused = [qg + [24 + r for r in kg] + [36 + r for r in kg] for qg, kg in zip(q, kv)]
        assert [(p.dim, p.index.tolist()) for p in parts] == [(0, fused), (1, q)]
    else:
        assert [(p.dim, p.index.tolist()) for p in parts] == [(0, q), (0, kv), (0, kv), (1, q)]
    # q rows 8·24, k and v rows 2·4·24, o columns 24·8
    assert heads.cost(layer) == 8 * HIDDEN + 2 * 4 * HIDDEN + HIDDEN * 8 == 576


@torch.no_grad()
@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_removing_the_middle_kv_group_equals_zeroing_its_query_heads(family):
    """Keeping groups 0 and 2 of 3 in every block = the dense model with the output columns of
    query heads 2 and 3 (kv group 1) zeroed; 576 parameters go per block; the config follows."""
    model = _model(family)
    adapter = adapter_for(model)
    dense = copy.deepcopy(model)
    before = param_counts(model)["total"]
    for layer, ref in zip(adapter.layers(model), adapter.layers(dense)):
        HeadGroups(adapter).keep(layer, torch.tensor([0, 2]))
        ref.get_submodule(adapter.attention.output).weight[:, 8:16] = 0
    assert before - param_counts(model)["total"] == 2 * 576
    assert sync_configs(model, adapter)
    c = model.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (4, 2, HEAD_DIM)
    torch.testing.assert_close(model(IDS).logits, dense(IDS).logits, rtol=1e-5, atol=1e-5)
