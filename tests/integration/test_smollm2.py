"""The one test on a real model: prune SmolLM2-135M, reload it in plain transformers, check it."""

import os

import pytest
import torch

from prunekit.models.registry import is_installed

pytestmark = pytest.mark.integration

if not is_installed("smollm2-135m") and not os.environ.get("PRUNEKIT_REQUIRE_BUILTIN"):
    pytest.skip(
        "smollm2-135m is not installed (prunekit install smollm2-135m)", allow_module_level=True
    )


def test_prune_real_model_and_reload(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import prunekit

    lm = prunekit.load_model("smollm2-135m")
    dense = prunekit.perplexity(
        lm.model, lm.tokenizer, "python", seq_len=128, max_tokens=2048, progress=False
    )
    result = prunekit.prune(
        lm.model,
        lm.tokenizer,
        method="wanda",
        sparsity=0.5,
        calib_samples=8,
        seq_len=128,
        progress=False,
    )
    out = prunekit.save(result, tmp_path / "wanda50")

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    layers = model.model.layers
    zeros = sum(
        int((lin.weight == 0).sum())
        for layer in layers
        for lin in (
            layer.self_attn.q_proj,
            layer.self_attn.k_proj,
            layer.self_attn.v_proj,
            layer.self_attn.o_proj,
            layer.mlp.gate_proj,
            layer.mlp.up_proj,
            layer.mlp.down_proj,
        )
    )
    numel = result.report["sparsity"]["pruned_layers_numel"]
    assert zeros / numel == pytest.approx(0.5, abs=1e-4)
    pruned = prunekit.perplexity(
        model, tokenizer, "python", seq_len=128, max_tokens=2048, progress=False
    )
    assert torch.isfinite(torch.tensor(pruned["ppl"]))
    assert dense["ppl"] < pruned["ppl"] < 50 * dense["ppl"]
    assert dense["ppl"] < 30  # a real code-capable model, not noise
