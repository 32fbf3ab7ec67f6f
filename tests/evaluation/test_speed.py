"""Speed measurement: the cached decode path is a real KV-cache decode; counts and FLOPs."""

from __future__ import annotations

import torch

from prunekit.evaluation import speed


def _tiny():
    from conftest import tiny_model

    return tiny_model("qwen2")


def test_cached_steps_match_full_forward():
    model = _tiny()
    ids = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(0))
    cache, nxt = speed._cached_step(model, ids)
    seq = torch.cat([ids, nxt], 1)
    for _ in range(4):
        cache, nxt = speed._cached_step(model, nxt, cache)
        seq = torch.cat([seq, nxt], 1)
    with torch.no_grad():
        full = model(input_ids=seq[:, :-1]).logits.argmax(-1)
    assert torch.equal(full[:, ids.shape[1] - 1 :], seq[:, ids.shape[1] :])


def test_param_counts_and_flops_see_zeros():
    model = _tiny()
    dense = speed.flops_per_token(model, context=32)
    before = speed.param_counts(model)
    q = speed.adapter_for(model).layers(model)[0].self_attn.q_proj
    with torch.no_grad():
        q.weight[:, : q.weight.shape[1] // 2] = 0
    after = speed.param_counts(model)
    sparse = speed.flops_per_token(model, context=32)
    removed = q.weight.numel() // 2
    assert before["total"] == after["total"] and before["nonzero"] - after["nonzero"] == removed
    assert sparse["dense"] == dense["dense"]
    assert dense["ideal_sparse"] - sparse["ideal_sparse"] == 2 * removed
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    attn = 4 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * 32
    assert dense["dense"] == 2 * (dense["linear_weights"] + cfg.vocab_size * cfg.hidden_size) + attn


def test_disk_size(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "config.json").write_text("{}")
    d = speed.disk_size(tmp_path)
    assert d["weights_bytes"] == 100 and d["bytes"] == 102
    assert speed.disk_size(None)["bytes"] is None
    assert speed.checkpoint_path(str(tmp_path / "missing")) is None
