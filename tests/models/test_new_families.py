"""StarCoder2, Phi-3 and Granite through every method, allocation and structural step, and each
export reloaded by plain transformers in a process that never imports prunekit."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml
from tiny_families import FAMILIES, NEW_FAMILIES, tiny_family_model

from conftest import _train_tokenizer
from prunekit.api import prune
from prunekit.cli import main

IDS = torch.randint(0, 128, (8, 16), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
@pytest.mark.parametrize("family", NEW_FAMILIES)
@pytest.mark.parametrize(
    ("method", "pattern", "allocation"),
    [
        ("magnitude", "unstructured", "uniform"),
        ("wanda", "2:4", "uniform"),
        ("wanda", "unstructured", "owl"),
        ("sparsegpt", "unstructured", "neuroal"),
    ],
)
def test_every_method_and_allocation_prunes_each_family(family, method, pattern, allocation):
    model = tiny_family_model(family)
    options = {"samples": 4, "grid": "coarse"} if allocation == "neuroal" else None
    result = prune(
        model,
        method=method,
        sparsity=None if pattern != "unstructured" else 0.5,
        pattern=pattern,
        calib=IDS,
        seq_len=IDS.shape[1],
        batch_size=4,
        progress=False,
        allocation=allocation,
        allocation_options=options,
    )
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    assert torch.isfinite(model(IDS[:2]).logits).all()


@pytest.fixture(scope="module")
def tokenizer():
    return _train_tokenizer()


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_structural_recipe_exports_a_plain_checkpoint(family, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    config = FAMILIES[family]()
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model_dir = tmp_path / family
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    corpus = Path(sysconfig.get_paths()["stdlib"]) / "bisect.py"
    steps = [
        {"vocabulary": {"corpus": str(corpus)}},
        {"depth": {"remove": 1, "criterion": "cosine"}},
        {"width": {"ffn_keep": 0.5, "multiple": 16}},
        {
            "unstructured": {
                "method": "wanda",
                "sparsity": 0.5,
                "allocation": "neuroal",
                "allocation_options": {"grid": "coarse", "samples": 2},
            }
        },
    ]
    recipe = {
        "model": str(model_dir),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "batch_size": 2},
        "steps": steps,
        "evaluate": {"perplexity": [str(corpus)], "ppl_seq_len": 32, "ppl_tokens": 128},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    code = (
        "import sys, json\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r})\n"
        "ids = m.generate(**t('def f(x):', return_tensors='pt'), max_new_tokens=4, min_new_tokens=4, do_sample=False)\n"
        "assert 'prunekit' not in sys.modules\n"
        "c = m.config\n"
        "print(json.dumps([c.model_type, c.num_hidden_layers, c.intermediate_size, c.vocab_size, len(t)]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    model_type, layers, ffn, vocab, tok_len = json.loads(res.stdout.strip().splitlines()[-1])
    assert (model_type, layers, ffn) == (config.model_type, 2, 32)
    report = json.loads((out / "report.json").read_text())
    assert vocab == tok_len == report["steps"][0]["tokens_kept"] < len(tokenizer)
    assert report["steps"][3]["allocation"]["search"]["grid"] == "coarse"
