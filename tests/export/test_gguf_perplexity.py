"""Perplexity of a GGUF measured in llama.cpp: the transformers path's windows, scored on
llama.cpp's logits, equal to transformers' perplexity of the same model; `prunekit eval
FILE.gguf --ppl` runs it and says which backend measured it."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_helpers import save, tiny
from hetero_helpers import make_hetero

from prunekit.evaluation.llamacpp import available

pytestmark = pytest.mark.skipif(
    not available(),
    reason="llama.cpp (llama-cpp-python) is not installed: scripts/install_llamacpp.sh builds it "
    "(the full ./setup.sh runs it; --minimal only installs a wheel built before)",
)

# Measured on these f32 files (head ×10, windows of 64 and 256): ppl agrees to ≤ 6e-6 relative
# and each window's mean NLL to ≤ 6e-5 nats (what is left is llama.cpp's f16 KV cache). 1e-4
# leaves a 15× margin for other CPUs' kernels and is far below what a tokenizer that splits
# differently moved it here (0.1-0.7%, even with the flat head of an unscaled random model).
RTOL = 1e-4
WINDOW_ATOL = 1e-3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ppl") / "functools_src.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "functools.py").read_text())
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name → (torch model, the folder's tokenizer, its f32 GGUF); the head scaled ×10 so the
    predictions are peaked and NLL is sensitive to the logits (a random model's are flat)."""
    from transformers import AutoTokenizer

    from prunekit.export.gguf import export_gguf

    root = tmp_path_factory.mktemp("gguf_ppl")
    out = {}
    for name, arch, seed in (("llama", "llama", 0), ("qwen2", "qwen2", 0), ("hetero", "qwen2", 1)):
        model, tok = tiny(arch, seed=seed)
        if name == "hetero":
            make_hetero(model)
        with torch.no_grad():
            model.lm_head.weight.mul_(10)
        folder = save(model, tok, root / name)
        gguf = export_gguf(folder, root / f"{name}.gguf", "f32", progress=False).path
        out[name] = (model, AutoTokenizer.from_pretrained(folder), gguf)
    return out


@pytest.mark.parametrize("name", ["llama", "qwen2", "hetero"])
@pytest.mark.parametrize("seq_len", [64, 256])
def test_llamacpp_perplexity_equals_transformers(exported, corpus, name, seq_len):
    from prunekit import api
    from prunekit.data.sources import resolve_source
    from prunekit.data.windows import evaluation_windows
    from prunekit.evaluation.llamacpp_eval import load_llamacpp

    model, tok, gguf = exported[name]
    lm = load_llamacpp(str(gguf), threads=1)
    source = resolve_source(str(corpus), "eval")
    assert torch.equal(  # the same windows: the GGUF's tokenizer splits as the folder's does
        evaluation_windows(source, tok, seq_len, 4096),
        evaluation_windows(source, lm.tokenizer, seq_len, 4096),
    )
    ref = api.perplexity(model, tok, str(corpus), seq_len, 4096, 4, progress=False)
    got = api.perplexity(lm.model, lm.tokenizer, str(corpus), seq_len, 4096, 4, progress=False)
    assert got["backend"] == "llama.cpp" and got["runtime"].startswith("llama-cpp-python")
    assert (got["tokens"], got["windows"], got["seq_len"]) == (
        ref["tokens"],
        ref["windows"],
        ref["seq_len"],
    )
    assert got["ppl"] == pytest.approx(ref["ppl"], rel=RTOL)
    assert np.allclose(got["window_nll"], ref["window_nll"], rtol=0, atol=WINDOW_ATOL)


def test_eval_cli_measures_ppl_in_llamacpp_and_says_so(exported, corpus, tmp_path, capsys):
    from prunekit.cli import main

    model, tok, gguf = exported["qwen2"]
    ppl = ["--ppl", str(corpus), "--ppl-seq-len", "64", "--ppl-tokens", "1024", "--no-progress"]
    report = tmp_path / "report.json"
    assert main(["eval", str(gguf), *ppl, "--threads", "1", "--report", str(report)]) == 0
    entry = json.loads(report.read_text())["evaluation"]["perplexity"][str(corpus)]
    assert entry["backend"] == "llama.cpp" and entry["threads"] == 1 and entry["dtype"] == "f32"
    out = capsys.readouterr()
    assert "in llama.cpp" in out.err and "llama.cpp" in out.out.splitlines()[-1]
    torch_report = tmp_path / "torch.json"
    argv = ["eval", str(gguf), *ppl, "--backend", "transformers", "--report", str(torch_report)]
    assert main(argv) == 0
    dequantized = json.loads(torch_report.read_text())["evaluation"]["perplexity"][str(corpus)]
    assert dequantized["backend"] == "transformers"
    assert entry["ppl"] == pytest.approx(dequantized["ppl"], rel=RTOL)


def test_window_beyond_the_context_is_one_line(exported, corpus, capsys):
    from prunekit.cli import main

    _, _, gguf = exported["llama"]
    argv = ["eval", str(gguf), "--ppl", str(corpus), "--ppl-seq-len", "300", "--no-progress"]
    assert main([*argv, "--backend", "llama.cpp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "prunekit: error: --ppl-seq-len 300 is beyond the model's context of 256 tokens; lower it"
    )
