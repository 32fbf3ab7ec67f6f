"""GGUF export read back with gguf.GGUFReader (no llama.cpp needed): metadata, shapes, tensor
types by the quant rule, weights within each type's error, the tokenizer, deci, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gguf_helpers import STDLIB, TEMPLATE, fields, save, tensors, tiny, unpermute
from hetero_helpers import make_hetero

from conftest import TINY
from prunekit.errors import PrunekitError
from prunekit.export.gguf import export_gguf, plan_export
from prunekit.export.gguf_tokenizer import tokenizer_from_gguf


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    out = {}
    for arch in ("llama", "qwen2"):
        model, tok = tiny(arch)
        out[arch] = (save(model, tok, root / arch, TEMPLATE), model)
    hetero, tok = tiny("qwen2", seed=1)
    make_hetero(hetero)
    out["qwen2-hetero"] = (save(hetero, tok, root / "qwen2-hetero"), hetero)
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_metadata_and_exact_f32_weights(folders, tmp_path, arch):
    folder, model = folders[arch]
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False).path
    meta = fields(out)
    assert meta["general.architecture"] == arch
    assert meta[f"{arch}.block_count"] == TINY["num_hidden_layers"]
    assert meta[f"{arch}.attention.head_count"] == TINY["num_attention_heads"]
    assert meta[f"{arch}.attention.head_count_kv"] == TINY["num_key_value_heads"]
    assert meta[f"{arch}.feed_forward_length"] == TINY["intermediate_size"]
    assert meta[f"{arch}.attention.key_length"] == 8
    got = tensors(out)
    state = model.state_dict()
    assert got["token_embd.weight"][1].shape == tuple(state["model.embed_tokens.weight"].shape)
    heads = {"q_proj": TINY["num_attention_heads"], "k_proj": TINY["num_key_value_heads"]}
    for i in range(TINY["num_hidden_layers"]):
        for proj, short in (("q_proj", "attn_q"), ("k_proj", "attn_k")):
            for kind in ("weight", "bias") if arch == "qwen2" else ("weight",):
                src = state[f"model.layers.{i}.self_attn.{proj}.{kind}"].numpy()
                value = got[f"blk.{i}.{short}.{kind}"][1]
                if arch == "llama":  # llama.cpp's llama rotates adjacent pairs
                    value = unpermute(value, heads[proj])
                np.testing.assert_array_equal(value, src)
        np.testing.assert_array_equal(
            got[f"blk.{i}.ffn_down.weight"][1], state[f"model.layers.{i}.mlp.down_proj.weight"]
        )
    np.testing.assert_array_equal(got["output.weight"][1], state["lm_head.weight"])


@pytest.mark.parametrize(
    "quant, matrix, tolerance",
    [
        ("f16", "F16", 1e-3),
        ("bf16", "BF16", 8e-3),
        ("q8_0", "Q8_0", 1 / 127),
        ("q4_0", "Q4_0", 1 / 7),
    ],
)
def test_quant_types_and_error(folders, tmp_path, quant, matrix, tolerance):
    folder, model = folders["qwen2"]
    out = export_gguf(folder, tmp_path / "m.gguf", quant, progress=False).path
    got = tensors(out)
    state = model.state_dict()
    for name, (kind, value) in got.items():
        if value.ndim == 1:
            assert kind == "F32", name  # norms and biases stay exact
            continue
        expected = "Q8_0" if quant == "q4_0" and name == "output.weight" else matrix
        assert kind == expected, name
    src = state["model.layers.1.mlp.up_proj.weight"].numpy()
    value = got["blk.1.ffn_up.weight"][1]
    blocks = np.abs(src).reshape(src.shape[0], -1, 32).max(-1, keepdims=True)
    err = np.abs(value - src).reshape(blocks.shape[0], -1, 32)
    bound = blocks * tolerance + 1e-6 if quant.startswith("q") else np.abs(src).max() * tolerance
    assert (err <= bound).all()
    assert err.max() > 0 or quant == "f32"


def test_rows_not_multiple_of_32_fall_back_to_f16(folders, tmp_path):
    folder, _ = folders["qwen2-hetero"]
    got = tensors(export_gguf(folder, tmp_path / "m.gguf", "q8_0", progress=False).path)
    assert got["blk.1.ffn_down.weight"][0] == "F16"  # 42 channels per row
    assert got["blk.1.ffn_up.weight"][0] == "Q8_0"  # 32 per row


def test_per_layer_widths_become_deci(folders, tmp_path):
    folder, model = folders["qwen2-hetero"]
    config = json.loads((folder / "config.json").read_text())
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False).path
    meta = fields(out)
    assert meta["general.architecture"] == "deci"
    assert list(meta["deci.attention.head_count"]) == config["layer_num_attention_heads"]
    assert list(meta["deci.attention.head_count_kv"]) == config["layer_num_key_value_heads"]
    assert list(meta["deci.feed_forward_length"]) == config["layer_intermediate_sizes"]
    got = tensors(out)
    state = model.state_dict()
    for i, (h, kv) in enumerate(
        zip(config["layer_num_attention_heads"], config["layer_num_key_value_heads"])
    ):
        bias = state[f"model.layers.{i}.self_attn.q_proj.bias"].numpy()
        np.testing.assert_array_equal(unpermute(got[f"blk.{i}.attn_q.bias"][1], h), bias)
        k = state[f"model.layers.{i}.self_attn.k_proj.weight"].numpy()
        np.testing.assert_array_equal(unpermute(got[f"blk.{i}.attn_k.weight"][1], kv), k)


def test_tokenizer_metadata(folders, tmp_path):
    from transformers import AutoTokenizer

    folder, _ = folders["qwen2"]
    out = export_gguf(folder, tmp_path / "m.gguf", "q8_0", progress=False).path
    meta = fields(out)
    hf = AutoTokenizer.from_pretrained(folder)
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert (
        meta["tokenizer.ggml.pre"] == "qwen2"
    )  # transformers loads a qwen2 folder with Qwen2's split
    assert list(meta["tokenizer.ggml.tokens"]) == hf.convert_ids_to_tokens(list(range(len(hf))))
    eos = hf.convert_tokens_to_ids("<|endoftext|>")
    assert meta["tokenizer.ggml.token_type"][eos] == 3  # control
    assert meta["tokenizer.chat_template"] == TEMPLATE
    merges = json.loads(hf.backend_tokenizer.to_str())["model"]["merges"]
    assert list(meta["tokenizer.ggml.merges"]) == [" ".join(m) for m in merges]


def test_pruned_vocabulary_round_trip(tmp_path):
    """A vocabulary-pruned model: ids renumbered, merges to removed tokens gone, and the GGUF's
    tokenizer splits held-out code exactly as the pruned transformers tokenizer does."""
    from transformers import AutoTokenizer

    from prunekit.models.adapters import adapter_for
    from prunekit.structural.vocabulary import prune_vocabulary

    model, tok = tiny("qwen2", vocab=800)
    corpus = [(STDLIB / "bisect.py").read_text()]
    new_tok, report = prune_vocabulary(model, tok, adapter_for(model), corpus)
    assert report["tokens_kept"] < report["tokens_before"]
    folder = save(model, new_tok, tmp_path / "pruned")
    out = export_gguf(folder, tmp_path / "m.gguf", "f16", progress=False)
    assert out.vocab == report["tokens_kept"]
    meta = fields(out.path)
    kept = set(meta["tokenizer.ggml.tokens"])
    assert all(
        a in kept and b in kept and a + b in kept
        for a, b in (m.split(" ") for m in meta["tokenizer.ggml.merges"])
    )
    held_out = (STDLIB / "textwrap.py").read_text()  # not in the vocabulary corpus
    hf = AutoTokenizer.from_pretrained(folder)
    assert len(hf(held_out)["input_ids"]) > len(tok(held_out)["input_ids"])  # it needs pieces
    rebuilt = tokenizer_from_gguf(out.path)
    assert meta["tokenizer.ggml.merges"]
    assert rebuilt(held_out)["input_ids"] == hf(held_out)["input_ids"]


def test_no_half_written_file(folders, tmp_path, monkeypatch):
    import prunekit.export.gguf as gguf_mod

    folder, _ = folders["llama"]
    calls = {"n": 0}
    real = gguf_mod._array

    def failing(job):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return real(job)

    monkeypatch.setattr(gguf_mod, "_array", failing)
    with pytest.raises(OSError):
        export_gguf(folder, tmp_path / "m.gguf", "f16", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refusals(folders, tmp_path):
    folder, _ = folders["llama"]
    target = tmp_path / "m.gguf"
    target.write_text("x")
    with pytest.raises(PrunekitError, match="already exists; pass --force"):
        export_gguf(folder, target, "f16", progress=False)
    with pytest.raises(PrunekitError, match="unknown --quant 'q5_k'"):
        export_gguf(folder, tmp_path / "n.gguf", "q5_k", progress=False)
    with pytest.raises(PrunekitError, match="has no config.json"):
        plan_export(tmp_path, "f16")
    assert target.read_text() == "x"


def test_refuses_per_layer_qwen3_and_gemma(tmp_path):
    from transformers import AutoModelForCausalLM

    from conftest import tiny_config

    model, tok = tiny("qwen3", head_dim=8)
    make_hetero(model)
    folder = save(model, tok, tmp_path / "qwen3")
    with pytest.raises(PrunekitError, match="deci .* has no q/k norms"):
        plan_export(folder, "f16")
    torch.manual_seed(0)
    config = tiny_config("gemma3")
    config.vocab_size = len(tok)
    gemma = AutoModelForCausalLM.from_config(config)
    folder = save(gemma, tok, tmp_path / "gemma")
    with pytest.raises(PrunekitError, match="not 'gemma3_text'"):
        plan_export(folder, "f16")


def test_refuses_tokenizer_llamacpp_cannot_split_alike(folders, tmp_path):
    """A pre-tokenizer with no llama.cpp twin (here: Metaspace) is refused, not guessed."""
    import shutil

    from tokenizers import Tokenizer, pre_tokenizers

    src, _ = folders["llama"]
    folder = tmp_path / "odd"
    shutil.copytree(src, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.save(str(folder / "tokenizer.json"))
    with pytest.raises(PrunekitError, match="pre-tokenizer \\(Metaspace\\) has no llama.cpp"):
        plan_export(folder, "f16")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_transformers_reads_the_file_back_to_the_same_model(folders, tmp_path, arch):
    """transformers' own GGUF loader (which undoes llama.cpp's q/k row order for llama) gets
    the source model back, logits and all: the old `prunekit eval FILE.gguf` path
    (--backend transformers) keeps working on exported files."""
    from transformers import AutoTokenizer

    from prunekit.models.loading import load_model

    folder, model = folders[arch]
    out = export_gguf(folder, tmp_path / "m.gguf", "f32", progress=False).path
    lm = load_model(out)
    text = (STDLIB / "textwrap.py").read_text()[:2000]
    ids = AutoTokenizer.from_pretrained(folder)(text)["input_ids"]
    with torch.no_grad():
        got = lm.model(torch.tensor([ids[:128]])).logits
        want = model(torch.tensor([ids[:128]])).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
