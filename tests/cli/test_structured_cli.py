"""`prunekit structured` end to end on a tiny model: the export equals the in-memory API result, and
bad input is one line with nothing written."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.cli import main
from prunekit.export.widths import layer_widths

IDS = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(1))
CALIB = ["--calib-samples", "4", "--seq-len", "32", "--batch-size", "2"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text())
    return path


def _in_memory(model_dir, corpus, **options):
    lm = prunekit.load_model(model_dir)
    calib = dict(calib=str(corpus), calib_samples=4, seq_len=32, batch_size=2, progress=False)
    prunekit.structured(lm.model, lm.tokenizer, **calib, **options)
    return lm.model


def _logits(model):
    with torch.no_grad():
        return model(IDS).logits


def test_uniform_result_is_a_stock_checkpoint(tmp_path, tiny_model_dir, corpus, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    flags = ["--heads", "0.5", "--ffn", "0.25", "--ratios", "uniform", "--max-ratio", "0.5"]
    argv = ["structured", str(tiny_model_dir), *flags, "--calib", str(corpus), *CALIB]
    assert main([*argv, "-o", str(out)]) == 0
    assert "heads: removed / target params" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    section = report["structured"]
    assert section["uniform"] and section["kinds"]["heads"]["groups_after"] == [1, 1, 1]
    assert section["kinds"]["ffn"]["groups_after"] == [48, 48, 48]
    assert report["params"]["total"] == section["params_after"]["total"]
    assert (out / "structured_ratios.png").stat().st_size > 1000
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and config["num_key_value_heads"] == 1
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    want = _in_memory(tiny_model_dir, corpus, heads=0.5, ffn=0.25, ratios="uniform", max_ratio=0.5)
    torch.testing.assert_close(_logits(reloaded), _logits(want), rtol=1e-5, atol=1e-5)


def test_adaptive_per_block_result_reloads_with_its_widths(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "out"
    flags = ["--heads", "0.3", "--ffn", "0.3", "--importance", "fused", "--ratios", "adaptive"]
    argv = ["structured", str(tiny_model_dir), *flags, "--calib", str(corpus), *CALIB]
    assert main([*argv, "-o", str(out)]) == 0
    section = json.loads((out / "report.json").read_text())["structured"]
    assert not section["uniform"]
    sigma = section["kinds"]["ffn"]["importance"]["sigma"]
    assert sigma["taylor_vector"] > 0 and sigma["taylor_element"] > 0
    loaded = prunekit.load_model(out).model
    widths = layer_widths(loaded)
    assert [w.kv_heads for w in widths] == section["kinds"]["heads"]["groups_after"]
    assert [w.mlp for w in widths] == section["kinds"]["ffn"]["groups_after"]
    want = _in_memory(tiny_model_dir, corpus, heads=0.3, ffn=0.3)
    torch.testing.assert_close(_logits(loaded), _logits(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--heads", "1.0"], "--heads must be a fraction in [0, 1), got 1 (1 would remove"),
        (["--ffn", "1.5"], "ffn must be a fraction in [0, 1), got 1.5"),
        (["--heads", "0.2", "--target", "0.2"], "give either --target or --heads/--ffn, not both"),
        ([], "nothing to remove"),
        (["--ffn", "0.2", "--multiple", "0"], "multiple must be a whole number ≥ 1"),
        (["--ffn", "0.2", "--seq-len", "1"], "--seq-len must be a whole number ≥ 2"),
        (["--ffn", "0.2", "--calib", "/no/such/corpus"], "/no/such/corpus"),
        (["--heads", "0.7"], "structured heads (ratios adaptive) asks for"),  # after loading
        (["--ffn", "0.5", "--ratios", "skip"], "ratios skip leaves no block to prune"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_model_dir, flags, message, capsys):
    out = tmp_path / "out"
    argv = ["structured", str(tiny_model_dir), *CALIB, *flags, "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()  # loading progress may come first
    errors = [line for line in err if line.startswith("prunekit: error:")]
    assert errors == [err[-1]] and message in err[-1]
    assert not out.exists()


def test_python_api_rejects_unknown_options(tiny_model_dir):
    lm = prunekit.load_model(tiny_model_dir)
    with pytest.raises(prunekit.errors.PrunekitError, match="unknown option 'head'"):
        prunekit.structured(lm.model, lm.tokenizer, head=0.2)
