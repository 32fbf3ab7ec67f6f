"""Qwen3 (q/k norms, explicit head_dim) and Mistral end to end on tiny random configs: SparseGPT
with NeuroAL hits its target, and a structural + unstructured recipe exports a checkpoint that plain
transformers reloads (tests/methods/test_oneshot_families.py: Wanda against the naive reference)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml

from conftest import _train_tokenizer, tiny_config, tiny_model
from prunekit.api import prune
from prunekit.cli import main

ARCHS = ["qwen3", "mistral"]
IDS = torch.randint(0, 128, (8, 16), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ARCHS)
def test_sparsegpt_with_neuroal_hits_the_target(arch):
    model = tiny_model(arch)
    result = prune(
        model,
        method="sparsegpt",
        sparsity=0.6,
        calib=IDS,
        seq_len=16,
        batch_size=4,
        progress=False,
        allocation="neuroal",
        allocation_options={"samples": 4, "grid": "coarse"},
    )
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.6, abs=1e-3)
    assert torch.isfinite(model(IDS[:2]).logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_structural_recipe_exports_a_plain_checkpoint(arch, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = _train_tokenizer()
    config = tiny_config(arch)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model_dir = tmp_path / arch
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    corpus = Path(sysconfig.get_paths()["stdlib"]) / "bisect.py"
    recipe = {
        "model": str(model_dir),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "batch_size": 2},
        "steps": [
            {"vocabulary": {"corpus": str(corpus)}},
            {"depth": {"remove": 1, "criterion": "kl"}},
            {"width": {"ffn_keep": 0.5, "multiple": 16}},
            {"unstructured": {"method": "wanda", "pattern": "2:4"}},
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.intermediate_size) == (arch, 2, 32)
    report = json.loads((out / "report.json").read_text())
    assert cfg.vocab_size == len(tok) == report["steps"][0]["tokens_kept"] < len(tokenizer)
    for layer in model.model.layers:
        for lin in (layer.mlp.down_proj, layer.self_attn.q_proj):
            groups = (lin.weight == 0).reshape(lin.weight.shape[0], -1, 4).sum(-1)
            assert bool((groups == 2).all())
    ids = tok("def f(x):", return_tensors="pt").input_ids
    out_ids = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out_ids.shape[1] == ids.shape[1] + 4
