"""Vocabulary pruning: in-domain text tokenizes identically, other text round-trips, exports load plainly."""

from __future__ import annotations

import inspect
import json
import os
import textwrap

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.models.registry import builtin_dir, is_installed
from prunekit.structural.vocabulary import merge_closure, plan_vocabulary, prune_vocabulary

OUT_OF_DOMAIN = [
    "Grüße aus München! Ça va? 東京タワー 🚀🐍 — naïve café ÿ\x07",
    "SELECT * FROM users WHERE id = 42; -- SQL, not Python",
    "    \t\n\n  trailing   spaces   and\r\nCRLF lines\n",
]


def _python_texts() -> list[str]:
    import json as json_mod
    import string

    return [inspect.getsource(m) for m in (textwrap, string, json_mod.encoder)]


def _tiny_llama(vocab_size: int, bos: int, eos: int, pad: int | None):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return AutoModelForCausalLM.from_config(cfg).eval()


def _trained_tokenizer(kind: str):
    """A small tokenizer trained here (no download): byte-level BPE or byte-fallback Unigram."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = _python_texts() + ["The quick brown fox jumps over the lazy dog. " * 20]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=1200,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=800, special_tokens=["<unk>", *specials], unk_token="<unk>"
        )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>" if kind == "unigram" else None,
    )


def _strings(tok, text):
    return tok.convert_ids_to_tokens(tok(text, add_special_tokens=False).input_ids)


def _check_pruned(tokenizer, tmp_path, texts_in, lossless_out=True):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _tiny_llama(
        len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    eos_str = tokenizer.eos_token
    corpus = texts_in[:-1]  # the last in-domain text is held out of the corpus
    new_tok, report = prune_vocabulary(model, tokenizer, adapter_for(model), corpus)
    assert report["tokens_kept"] == len(new_tok) == model.config.vocab_size < len(tokenizer)
    for text in corpus:
        assert _strings(new_tok, text) == _strings(tokenizer, text)
    for text in OUT_OF_DOMAIN + texts_in[-1:]:
        ids = new_tok(text, add_special_tokens=False).input_ids
        if lossless_out:
            assert new_tok.decode(ids) == tokenizer.decode(
                tokenizer(text, add_special_tokens=False).input_ids
            )
        assert max(ids) < len(new_tok)
    assert (
        model.config.eos_token_id == new_tok.convert_tokens_to_ids(eos_str) == new_tok.eos_token_id
    )
    assert model.generation_config.eos_token_id == model.config.eos_token_id
    model.save_pretrained(tmp_path)
    new_tok.save_pretrained(tmp_path)
    json.loads((tmp_path / "tokenizer.json").read_text())  # valid JSON the tokenizers library wrote
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    rtok = AutoTokenizer.from_pretrained(tmp_path)
    assert _strings(rtok, corpus[0]) == _strings(tokenizer, corpus[0])
    prompt = rtok("def add(a, b):", return_tensors="pt").input_ids
    out = reloaded.generate(prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt.shape[1] + 5
    assert isinstance(rtok.decode(out[0]), str)
    return report


def test_trained_byte_level_bpe(tmp_path):
    tok = _trained_tokenizer("bpe")
    report = _check_pruned(tok, tmp_path, _python_texts())
    assert report["kept_special_added"] >= 3 and report["merges_after"] < report["merges_before"]


def test_trained_unigram(tmp_path):
    tok = _trained_tokenizer("unigram")
    _check_pruned(
        tok, tmp_path, _python_texts(), lossless_out=False
    )  # no byte fallback: <unk> possible


@pytest.mark.skipif(
    not is_installed("smollm2-135m") and not os.environ.get("PRUNEKIT_REQUIRE_BUILTIN"),
    reason="smollm2-135m is not installed (prunekit install smollm2-135m)",
)
def test_real_smollm2_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(builtin_dir("smollm2-135m"))
    report = _check_pruned(tok, tmp_path, _python_texts())
    assert report["tokens_before"] == 49152 and report["kept_base"] > 0


def test_merge_closure_by_hand():
    merges = [("a", "b"), ("ab", "c"), ("x", "y"), ("a", "bc"), ("b", "c")]
    assert merge_closure({"abc"}, merges) == {"abc", "ab", "c", "a", "b", "bc"}
    assert merge_closure({"q"}, merges) == {"q"}


def test_bad_vocabulary_input():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bpe = _trained_tokenizer("bpe")
    model = _tiny_llama(len(bpe), bpe.bos_token_id, bpe.eos_token_id, bpe.pad_token_id)
    with pytest.raises(PrunekitError, match="leaves no ordinary tokens"):
        prune_vocabulary(model, bpe, adapter_for(model), [""])
    with pytest.raises(PrunekitError, match="min_count"):
        plan_vocabulary(json.loads(bpe.backend_tokenizer.to_str()), torch.zeros(len(bpe)), 0)
    wl = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level = PreTrainedTokenizerFast(tokenizer_object=wl)
    with pytest.raises(PrunekitError, match="supports BPE and Unigram"):
        prune_vocabulary(_tiny_llama(3, 0, 1, None), word_level, adapter_for(model), ["a b"])

    class Slow:
        pass

    with pytest.raises(PrunekitError, match="fast"):
        prune_vocabulary(model, Slow(), adapter_for(model), ["x"])


@pytest.mark.skipif(
    not is_installed("smollm2-135m") and not os.environ.get("PRUNEKIT_REQUIRE_BUILTIN"),
    reason="smollm2-135m is not installed (prunekit install smollm2-135m)",
)
def test_whitespace_tokens_survive_a_corpus_without_them(tmp_path):
    """A corpus with no trailing spaces or blank indented lines (like the CPython sources) must
    not cost code its ' \\n' / '    \\n' tokens: they tokenize as in the original."""
    from transformers import AutoTokenizer

    from prunekit.structural.vocabulary import check_tokenizer, model_vocab, whitespace_tokens

    tok = AutoTokenizer.from_pretrained(builtin_dir("smollm2-135m"))
    corpus = ["\n".join(line.rstrip() for line in t.splitlines()) for t in _python_texts()]
    spaces = whitespace_tokens(check_tokenizer(tok), model_vocab(check_tokenizer(tok)))
    assert {"Ġ", "Ċ", "ĠĠĠ", "ĊĊ"} <= spaces and "Ġx" not in spaces
    model = _tiny_llama(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    new_tok, report = prune_vocabulary(model, tok, adapter_for(model), corpus)
    code = "def f(x): \n    \n    return x  \n\t\n"
    assert _strings(new_tok, code) == _strings(tok, code)
    assert report["kept_whitespace"] > 0
    assert set(new_tok.get_vocab()) >= spaces
