"""Role-derived facts checked by hand: consumers and the mapping of a consumer's δ onto rows."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from prunekit.models.adapters import adapter_for

# 4 query heads of head_dim 2 share 2 kv heads: heads 0,1 → kv 0; heads 2,3 → kv 1
CONFIG = SimpleNamespace(
    hidden_size=8, num_attention_heads=4, num_key_value_heads=2, head_dim=2, intermediate_size=3
)
DELTA = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])


def test_separate_qkv_rows_are_one_to_one_or_folded_by_kv_head():
    llama = adapter_for("llama")
    assert llama.consumer("self_attn.k_proj") == "self_attn.o_proj"
    assert llama.consumer("self_attn.o_proj") == "mlp.gate_proj"
    assert llama.consumer("mlp.up_proj") == "mlp.down_proj"
    assert llama.consumer("mlp.down_proj") is None
    assert llama.rows_from_consumer(CONFIG, "self_attn.q_proj", DELTA) is DELTA
    assert llama.rows_from_consumer(CONFIG, "self_attn.v_proj", DELTA).tolist() == [2, 3, 6, 7]
    assert llama.rows_from_consumer(CONFIG, "self_attn.k_proj", DELTA[:3]) is None


def test_fused_qkv_and_gate_up_concatenate_their_parts():
    phi3 = adapter_for("phi3")
    assert phi3.consumer("self_attn.qkv_proj") == "self_attn.o_proj"
    assert phi3.consumer("self_attn.o_proj") == "mlp.gate_up_proj"
    qkv = phi3.rows_from_consumer(CONFIG, "self_attn.qkv_proj", DELTA)
    assert qkv.tolist() == [*DELTA.tolist(), 2, 3, 6, 7, 2, 3, 6, 7]
    mid = torch.tensor([1.0, 2.0, 3.0])
    assert phi3.rows_from_consumer(CONFIG, "mlp.gate_up_proj", mid).tolist() == [1, 2, 3, 1, 2, 3]


def test_plain_mlp_and_logit_post_processing():
    starcoder2 = adapter_for("starcoder2")
    assert starcoder2.linear_names()[-2:] == ("mlp.c_fc", "mlp.c_proj")
    assert starcoder2.consumer("mlp.c_fc") == "mlp.c_proj"
    logits = torch.tensor([8.0, -40.0])
    granite = SimpleNamespace(config=SimpleNamespace(logits_scaling=4.0))
    assert adapter_for("granite").finish_logits(granite, logits).tolist() == [2.0, -10.0]
    gemma = SimpleNamespace(config=SimpleNamespace(final_logit_softcapping=10.0))
    capped = adapter_for("gemma3").finish_logits(gemma, logits)
    torch.testing.assert_close(capped, torch.tanh(logits / 10) * 10)
