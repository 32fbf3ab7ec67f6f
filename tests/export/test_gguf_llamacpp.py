"""Exported GGUFs in a real llama.cpp: its logits against transformers', the pruned vocabulary's
tokenization in both, greedy generation, what deci holds, and `prunekit eval FILE.gguf`."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_helpers import save, tiny
from hetero_helpers import make_hetero

from prunekit.errors import PrunekitError
from prunekit.evaluation.llamacpp import available

pytestmark = pytest.mark.skipif(
    not available(),
    reason="llama.cpp (llama-cpp-python) is not installed: scripts/install_llamacpp.sh builds it "
    "(the full ./setup.sh runs it; --minimal only installs a wheel built before)",
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TEXT = (STDLIB / "textwrap.py").read_text()[:3000]


def llama(path: Path):
    from prunekit.evaluation.llamacpp import LlamaCppModel

    return LlamaCppModel(path, n_ctx=1024, threads=1)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def compare(model, tokenizer, gguf: Path, atol: float) -> np.ndarray:
    """llama.cpp's logits for TEXT's first 200 tokens against transformers'; the arch read back."""
    ids = tokenizer(TEXT)["input_ids"][:200]
    with llama(gguf) as lm:
        got = lm.logits(ids)
    ref = hf_logits(model, ids)
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() <= atol * scale, np.abs(got - ref).max() / scale
    return got


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("llamacpp")
    out = {}
    for name, arch, seed in (("llama", "llama", 0), ("qwen2", "qwen2", 0), ("hetero", "qwen2", 1)):
        model, tok = tiny(arch, seed=seed, tie_word_embeddings=name == "llama")
        if name == "hetero":
            make_hetero(model)
        out[name] = (save(model, tok, root / name), model, tok)
    return out


@pytest.mark.parametrize("name", ["llama", "qwen2", "hetero"])
# llama.cpp keeps its KV cache in f16: even an f32 file differs by ~2e-4 of the logit range
@pytest.mark.parametrize("quant, atol", [("f32", 1e-3), ("f16", 2e-3)])
def test_logits_match_transformers(models, tmp_path, name, quant, atol):
    from prunekit.export.gguf import export_gguf

    folder, model, tok = models[name]
    out = export_gguf(folder, tmp_path / "m.gguf", quant, progress=False)
    assert out.arch == {"llama": "llama", "qwen2": "qwen2", "hetero": "deci"}[name]
    got = compare(model, tok, out.path, atol)
    ref = hf_logits(model, tok(TEXT)["input_ids"][:200])
    assert (got.argmax(-1) == ref.argmax(-1)).all()


@pytest.mark.parametrize("quant", ["q8_0", "q4_0"])
def test_quantized_logits_stay_close(models, tmp_path, quant):
    from prunekit.export.gguf import export_gguf

    folder, model, tok = models["qwen2"]
    out = export_gguf(folder, tmp_path / "m.gguf", quant, progress=False)
    ids = tok(TEXT)["input_ids"][:200]
    with llama(out.path) as lm:
        got = lm.logits(ids)
    ref = hf_logits(model, ids)
    corr = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    assert corr > (0.9999 if quant == "q8_0" else 0.99)


def test_uniform_query_head_pruning_of_qwen2_goes_to_deci(tmp_path):
    """llama.cpp's qwen2 block wants heads × head_dim = hidden: Qwen2 with whole kv groups
    removed in every layer is written as deci, q/k/v biases sliced with their heads."""
    from hetero_helpers import uniform_plan

    from prunekit.export.gguf import export_gguf

    model, tok = tiny("qwen2", seed=2)
    make_hetero(model, {i: (groups, []) for i, (groups, _) in uniform_plan(model).items()})
    folder = save(model, tok, tmp_path / "q")
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False)
    assert out.arch == "deci"
    compare(model, tok, out.path, 1e-3)


def test_pruned_vocabulary_tokenizes_like_transformers(tmp_path):
    """Held-out code through the pruned vocabulary: llama.cpp's ids are transformers' ids."""
    from transformers import AutoTokenizer

    from prunekit.export.gguf import export_gguf
    from prunekit.models.adapters import adapter_for
    from prunekit.structural.vocabulary import prune_vocabulary

    model, tok = tiny("qwen2", vocab=800)
    new_tok, report = prune_vocabulary(
        model, tok, adapter_for(model), [(STDLIB / "bisect.py").read_text()]
    )
    assert report["tokens_kept"] < report["tokens_before"]
    folder = save(model, new_tok, tmp_path / "pruned")
    out = export_gguf(folder, tmp_path / "m.gguf", "f16", progress=False)
    hf = AutoTokenizer.from_pretrained(folder)
    held_out = [(STDLIB / n).read_text() for n in ("textwrap.py", "json/decoder.py", "heapq.py")]
    held_out.append("def f(x):\n\treturn x ** 2  # ünïcödé, emoji 🙂, CJK 漢字\r\n")
    with llama(out.path) as lm:
        for text in held_out:
            assert lm.tokenize(text) == hf(text)["input_ids"]
        assert lm.tokenize("<|endoftext|>x") == hf("<|endoftext|>x")["input_ids"]


def test_greedy_generation_follows_transformers(models, tmp_path):
    """Each token llama.cpp picks greedily is transformers' argmax for the same prefix (up to
    ties within llama.cpp's f16-cache noise: a random tiny model's logits are nearly flat), and
    the evaluation's text is the decoded tokens."""
    from transformers import AutoTokenizer

    from prunekit.evaluation.generation import generate_batched
    from prunekit.evaluation.llamacpp_eval import LlamaCppBackend
    from prunekit.export.gguf import export_gguf

    folder, model, _ = models["qwen2"]
    tok = AutoTokenizer.from_pretrained(folder)  # Qwen2's split, as transformers loads the folder
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False)
    backend = LlamaCppBackend(out.path, threads=1, n_ctx=512)
    prompts = [TEXT[:300], TEXT[500:700], "import os\n"]
    got, stats = generate_batched(
        backend, tok, prompts, max_new_tokens=24, add_special_tokens=False, progress=False
    )
    assert stats["backend"] == "llama.cpp" and stats["generated_tokens"] == 3 * 24
    lm = backend.lm
    for prompt, gen in zip(prompts, got):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        lm.reset()
        logits, tokens = lm.decode(ids, 0), []
        for step in range(24):
            tokens.append(int(logits.argmax()))
            logits = lm.decode(tokens[-1:], len(ids) + step)
        assert gen[0].text == tok.decode(tokens)
        ref = hf_logits(model, ids + tokens)[len(ids) - 1 : -1]
        picked = ref[np.arange(24), tokens]
        assert (ref.max(-1) - picked <= 2e-3 * np.abs(ref).max()).all()


def test_parallel_sequences_decode_as_one(models, tmp_path):
    """`parallel` slots: more prompts than slots (slots reused), each continuation is what one
    sequence alone would pick (teacher-forced, within the f16-cache noise: no KV shared between
    sequences), results come back in prompt order, and the token budget holds per sequence."""
    from transformers import AutoTokenizer

    from prunekit.evaluation.generation import generate_batched
    from prunekit.evaluation.llamacpp_eval import LlamaCppBackend, _Stops
    from prunekit.export.gguf import export_gguf

    folder, _, _ = models["qwen2"]
    tok = AutoTokenizer.from_pretrained(folder)
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False)
    backend = LlamaCppBackend(out.path, threads=1, n_ctx=512, parallel=3)
    prompts = [TEXT[:300], TEXT[500:700], "import os\n", TEXT[900:1000], TEXT[1200:1600]]
    encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    finished: dict[int, list[int]] = {}
    jobs = [(ids, lambda logits, row: int(logits.argmax())) for ids in encoded]
    backend.continue_all(jobs, _Stops(backend, (), 16), finished.__setitem__)
    assert sorted(finished) == list(range(5))
    alone = LlamaCppBackend(out.path, threads=1, n_ctx=512).lm
    for ids, job in zip(encoded, range(5)):
        tokens = finished[job]
        assert len(tokens) == 16 or tokens[-1] in backend.special
        ref = alone.logits(ids + tokens)[len(ids) - 1 : -1]
        picked = ref[np.arange(len(tokens)), tokens]
        assert (ref.max(-1) - picked <= 2e-3 * np.abs(ref).max()).all()
    got, stats = generate_batched(
        backend, tok, prompts, max_new_tokens=16, add_special_tokens=False, progress=False
    )
    assert stats["batch_size"] == 3 and "3 sequences per batch" in stats["batching"]
    assert [g[0].new_tokens for g in got] == [len(finished[j]) for j in range(5)]


def test_step_feeds_each_sequence_its_own_cache(models, tmp_path):
    """step() over two sequences gives each the logits it gets alone (same context, f32 file)."""
    from prunekit.evaluation.llamacpp import LlamaCppModel
    from prunekit.export.gguf import export_gguf

    folder, _, tokenizer = models["llama"]
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False)
    a, b = tokenizer(TEXT[:400])["input_ids"][:40], tokenizer(TEXT[800:1200])["input_ids"][:25]
    with LlamaCppModel(out.path, n_ctx=128, threads=1, n_seq=2) as lm:
        lm.decode(a[:-1], 0, seq=0)
        lm.decode(b[:-1], 0, seq=1)
        both = lm.step([(0, a[-1], len(a) - 1), (1, b[-1], len(b) - 1)])
        lm.reset(1)  # one sequence forgotten, the other kept
        again = lm.decode(b, 0, seq=1)
    with llama(out.path) as alone:
        ref_a, ref_b = alone.logits(a)[-1], alone.logits(b)[-1]
    scale = np.abs(ref_a).max()
    assert np.abs(both[0] - ref_a).max() <= 1e-3 * scale
    assert np.abs(both[1] - ref_b).max() <= 1e-3 * scale
    assert np.abs(again - ref_b).max() <= 1e-3 * scale
    lm = LlamaCppModel(out.path, n_ctx=128, threads=1, n_seq=2)
    with pytest.raises(PrunekitError, match="do not fit llama.cpp's context of 128"):
        lm.step([(0, a[0], 128)])
    lm.close()


@pytest.mark.parametrize("parallel", [1, 2])
def test_eval_cli_runs_humaneval_and_speed_in_llamacpp(models, tmp_path, capsys, parallel):
    import json

    from prunekit.cli import main
    from prunekit.export.gguf import export_gguf

    folder, _, _ = models["llama"]
    gguf = export_gguf(folder, tmp_path / "m.gguf", "q8_0", progress=False).path
    report = tmp_path / "report.json"
    argv = ["eval", str(gguf), "--speed", "--speed-prompt-len", "32", "--speed-decode-steps", "4"]
    argv += ["--speed-repeats", "2", "--threads", "1", "--no-progress", "--report", str(report)]
    argv += ["--humaneval", "--limit", "2", "--max-new-tokens", "8", "--exec-timeout", "5"]
    argv += ["--parallel", str(parallel)]
    assert main(argv) == 0
    evaluation = json.loads(report.read_text())["evaluation"]
    sp, he = evaluation["speed"], evaluation["humaneval"]
    assert sp["backend"] == "llama.cpp" and sp["threads"] == 1 and sp["dtype"] == "q8_0"
    assert sp["prefill"]["tokens_per_s"] > 0 and sp["decode"]["batch_1"]["tokens_per_s"] > 0
    assert sp["disk"]["bytes"] == gguf.stat().st_size
    assert sp["params"]["total"] >= sp["params"]["nonzero"] > 0
    assert he["backend"] == "llama.cpp" and he["problems"] == 2 and he["dtype"] == "q8_0"
    assert he["mode"] == "completion" and 0 < he["generated_tokens"] <= 16
    assert he["batch_size"] == parallel
    # every slot busy: parallel x 4 tokens per timed run
    assert ("batch_2" in sp["decode"]) == (parallel == 2)
    if parallel == 2:
        assert "2 sequences per batch" in he["batching"]
        assert sp["decode"]["batch_2"]["tokens_per_s"] > 0
    rows = (tmp_path / "humaneval_problems.jsonl").read_text().splitlines()
    assert len(rows) == 2
    out = capsys.readouterr()
    assert "in llama.cpp" in out.err and "HumanEval [completion" in out.out


def vocab_file(folder: Path, out: Path) -> Path:
    """A GGUF of `folder`'s metadata and tokenizer only (llama.cpp's vocab_only load reads it)."""
    from prunekit.export.gguf import plan_export, write_plan

    plan = plan_export(folder, "f16")
    plan.jobs = []
    write_plan(plan, out, progress=False)
    return out


def pruned_vocab_folder(source: Path, out: Path) -> Path:
    """`source`'s tokenizer pruned to the tokens of two stdlib files (prunekit's vocabulary
    step on the tokenizer alone), with a config and stand-in embedding rows of the new size."""
    import json
    import shutil

    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from prunekit.structural.vocabulary import (
        check_tokenizer,
        plan_vocabulary,
        rebuild_tokenizer,
        rewrite_tokenizer_json,
        token_counts,
    )

    tok = AutoTokenizer.from_pretrained(source)
    tok_json = check_tokenizer(tok)
    corpus = [(STDLIB / n).read_text() for n in ("bisect.py", "heapq.py", "functools.py")]
    counts = token_counts(tok, corpus, len(tok))
    plan = plan_vocabulary(tok_json, counts, required_ids=tok.all_special_ids)
    new = rebuild_tokenizer(tok, rewrite_tokenizer_json(tok_json, plan.keep), plan.old_to_new)
    out.mkdir()
    new.save_pretrained(out)
    config = json.loads((source / "config.json").read_text())
    ids = plan.old_to_new
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        if isinstance(config.get(key), int):
            config[key] = ids[config[key]]
    config["vocab_size"] = len(plan.keep)
    (out / "config.json").write_text(json.dumps(config))
    rows = torch.zeros(len(plan.keep), 8)
    weights = {"model.embed_tokens.weight": rows, "lm_head.weight": rows.clone()}
    save_file(weights, out / "model.safetensors")
    shutil.copy(source / "generation_config.json", out / "generation_config.json")
    gen = json.loads((out / "generation_config.json").read_text())
    gen.update(
        {k: ids[v] for k, v in gen.items() if k.endswith("_token_id") and isinstance(v, int)}
    )
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out


@pytest.mark.integration
@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
@pytest.mark.parametrize("pruned", [False, True])
def test_real_vocabulary_tokenizes_like_transformers(tmp_path, name, pruned):
    """A built-in model's full vocabulary, and the same pruned to a small corpus: held-out code
    (and prose, unicode, special tokens) gets the same ids in llama.cpp as in transformers."""
    from transformers import AutoTokenizer

    from prunekit.evaluation.llamacpp import LlamaCppModel
    from prunekit.models.registry import builtin_dir, is_installed

    if not is_installed(name):
        pytest.skip(f"built-in {name} is not installed (prunekit install {name})")
    folder = builtin_dir(name)
    if pruned:
        folder = pruned_vocab_folder(folder, tmp_path / "pruned")
    gguf = vocab_file(folder, tmp_path / "v.gguf")
    hf = AutoTokenizer.from_pretrained(folder)
    texts = [(STDLIB / n).read_text() for n in ("textwrap.py", "json/decoder.py", "ast.py")]
    texts += [
        "def f(x):\n\treturn x ** 2  # ünïcödé, emoji 🙂, CJK 漢字, 12345678\r\n   \n",
        "<|im_start|>user\nWrite quicksort.<|im_end|>\n<|im_start|>assistant\n```python\n",
    ]
    lm = LlamaCppModel(gguf, vocab_only=True)
    try:
        for text in texts:
            assert lm.tokenize(text) == hf(text, add_special_tokens=False)["input_ids"]
    finally:
        lm.close()
