"""Vocabulary pruning's pure parts on hand-written tokenizer JSONs: each test kills mutants the
end-to-end tests (trained tokenizers, where almost every token is kept anyway) let through."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.structural.vocabulary import (
    _head_params,
    _merge_pairs,
    _remap_processor,
    base_tokens,
    check_tokenizer,
    is_byte_level,
    model_vocab,
    plan_vocabulary,
    remap_config_ids,
    rewrite_tokenizer_json,
    slice_vocab_rows,
    special_ids,
    token_counts,
    whitespace_tokens,
)

# ids 0-11 in the model, 11 also an added special token (as GPT-2's <|endoftext|>); "▁" / "▁▁" are whitespace (not byte-level)
VOCAB = {
    "a": 0,
    "b": 1,
    "c": 2,
    "x": 3,
    "y": 4,
    "ab": 5,
    "abc": 6,
    "xy": 7,
    "▁": 8,
    "▁▁": 9,
    "bc": 10,
    "<s>": 11,
}
MERGES = [["a", "b"], ["ab", "c"], ["x", "y"], ["b", "c"], ["▁", "▁"]]


def _bpe_json() -> dict:
    """A plain (not byte-level, no byte fallback) BPE tokenizer JSON with one added token."""
    return {
        "model": {"type": "BPE", "vocab": dict(VOCAB), "merges": [list(m) for m in MERGES]},
        "pre_tokenizer": {"type": "Metaspace"},
        "added_tokens": [{"id": 11, "content": "<s>", "special": True}],
    }


def _counts(values: dict[int, int], n: int = 12) -> torch.Tensor:
    counts = torch.zeros(n, dtype=torch.long)
    for i, c in values.items():
        counts[i] = c
    return counts


def test_is_byte_level_looks_in_nested_pre_tokenizers_and_in_the_decoder():
    """ByteLevel inside a Sequence's list, or only in the decoder, still makes it byte-level."""
    nested = {
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel"}],
        }
    }
    assert is_byte_level(nested)
    assert is_byte_level({"pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "ByteLevel"}})
    assert not is_byte_level(
        {"pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "Metaspace"}}
    )
    assert not is_byte_level({})


def test_model_vocab_and_merge_pairs_read_both_formats():
    """Unigram ids are list positions; merges come as "a b" strings or [a, b] lists."""
    unigram = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.0], ["bc", -2.0]]}}
    assert model_vocab(unigram) == {"<unk>": 0, "a": 1, "bc": 2}
    assert model_vocab(_bpe_json()) == VOCAB
    assert _merge_pairs({"merges": ["a b", ["c", "d"], "ab c"]}) == [
        ("a", "b"),
        ("c", "d"),
        ("ab", "c"),
    ]
    assert _merge_pairs({}) == []


def test_base_tokens_for_byte_level_byte_fallback_plain_and_unigram():
    """Each branch of base_tokens on a vocabulary where the others would pick differently."""
    byte_level = {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "ByteLevel"}}
    vocab = {"Ġ": 0, "a": 1, "Ġa": 2, "<0x41>": 3, "中": 4}
    assert base_tokens(byte_level, vocab) == {"Ġ", "a"}  # not 中: outside GPT-2's byte alphabet

    fallback = {"model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>"}}
    vocab = {"<0x41>": 0, "<0x0A>": 1, "<0x0a>": 2, "<0x41>x": 3, "b": 4, "<unk>": 5, "▁a": 6}
    assert base_tokens(fallback, vocab) == {"<0x41>", "<0x0A>", "<unk>"}

    plain = {"model": {"type": "BPE", "unk_token": "<missing>"}}
    assert base_tokens(plain, {"a": 0, "bc": 1, "▁": 2}) == {"a", "▁"}

    unigram = {
        "model": {
            "type": "Unigram",
            "unk_id": 1,
            "vocab": [["a", -1.0], ["<unk>", 0.0], ["bc", -2.0]],
        }
    }
    assert base_tokens(unigram, model_vocab(unigram)) == {"a", "<unk>"}


def test_whitespace_tokens_use_the_byte_level_stand_ins_or_the_plain_characters():
    """Byte-level: only Ġ Ċ ĉ … runs; otherwise ▁ and real whitespace; never a token with a letter."""
    byte_level = {"pre_tokenizer": {"type": "ByteLevel"}}
    vocab = {"Ġ": 0, "ĠĠ": 1, "Ċ": 2, "ĠĊ": 3, "Ġa": 4, "▁": 5, " ": 6, "ĉ": 7, "ĊčĊ": 8}
    assert whitespace_tokens(byte_level, vocab) == {"Ġ", "ĠĠ", "Ċ", "ĠĊ", "ĉ", "ĊčĊ"}
    plain = {"pre_tokenizer": {"type": "Metaspace"}}
    vocab = {"▁": 0, "▁▁": 1, " \n": 2, "\t": 3, "▁a": 4, "Ġ": 5, "\r\n": 6}
    assert whitespace_tokens(plain, vocab) == {"▁", "▁▁", " \n", "\t", "\r\n"}


def test_token_counts_sum_every_chunk_once_including_the_last_partial_one():
    """Five texts in chunks of two: every occurrence counted exactly once, ids past the rows cut."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "c": 2, "[UNK]": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fake = SimpleNamespace(backend_tokenizer=tok)
    texts = ["a b a", "c", "a", "b b", "c a"]
    assert token_counts(fake, texts, 6, chunk=2).tolist() == [4, 3, 2, 0, 0, 0]
    assert token_counts(fake, [*texts, "zzz"], 3, chunk=4).tolist() == [4, 3, 2]
    assert token_counts(fake, [], 2).tolist() == [0, 0]


def test_check_tokenizer_refuses_bpe_dropout():
    """A BPE model with dropout is non-deterministic: one error line; without it, the JSON."""
    from tokenizers import Tokenizer, models

    vocab, merges = {"a": 0, "b": 1, "ab": 2}, [("a", "b")]
    dropout = SimpleNamespace(backend_tokenizer=Tokenizer(models.BPE(vocab, merges, dropout=0.5)))
    with pytest.raises(PrunekitError, match="BPE dropout"):
        check_tokenizer(dropout)
    plain = SimpleNamespace(backend_tokenizer=Tokenizer(models.BPE(vocab, merges)))
    assert check_tokenizer(plain)["model"]["vocab"] == vocab


def test_plan_counts_every_reason_by_hand():
    """min_count 2 keeps abc (2) and a (3) from the corpus, not xy (1) nor the added <s> (5);
    ab joins for abc's merge chain, ▁▁ as whitespace, the single characters as base."""
    counts = _counts({6: 2, 7: 1, 0: 3, 11: 5})
    plan = plan_vocabulary(_bpe_json(), counts, min_count=2)
    assert plan.keep == [0, 1, 2, 3, 4, 5, 6, 8, 9, 11]
    assert plan.old_to_new == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8, 11: 9}
    fields = (plan.tokens_before, plan.from_corpus, plan.special, plan.base, plan.whitespace)
    assert fields == (12, 2, 1, 5, 1)
    assert (plan.from_merges, plan.merges_before, plan.merges_after) == (1, 5, 3)

    # min_count 1 also keeps xy (and its merge); a required id that exists is special (with its
    # merge b+c), one that does not exist is ignored
    plan = plan_vocabulary(_bpe_json(), counts, min_count=1, required_ids=[10, 99])
    assert plan.keep == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert (plan.from_corpus, plan.special, plan.base, plan.from_merges) == (3, 2, 5, 1)
    assert plan.merges_after == 5


def test_a_corpus_of_base_tokens_only_is_refused():
    """Seeing only single characters (base tokens) is no corpus: the message says so."""
    with pytest.raises(PrunekitError, match="no ordinary tokens beyond the 1 special and 6 base"):
        plan_vocabulary(_bpe_json(), _counts({0: 9, 8: 4, 11: 1}))


def test_remap_processor_rewrites_ids_and_roberta_pairs_in_nested_processors():
    """Template `ids` lists and Roberta/Bert `sep`/`cls` [token, id] pairs, inside a Sequence."""
    node = {
        "type": "Sequence",
        "processors": [
            {
                "type": "RobertaProcessing",
                "sep": ["</s>", 3],
                "cls": ["<s>", 1],
                "trim_offsets": True,
            },
            {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1, 3], "tokens": ["<s>", "</s>"]}},
            },
        ],
    }
    out = _remap_processor(node, {1: 0, 3: 1})
    roberta, template = out["processors"]
    assert roberta == {
        "type": "RobertaProcessing",
        "sep": ["</s>", 1],
        "cls": ["<s>", 0],
        "trim_offsets": True,
    }
    assert template["special_tokens"]["<s>"] == {
        "id": "<s>",
        "ids": [0, 1],
        "tokens": ["<s>", "</s>"],
    }
    assert template["single"] == node["processors"][1]["single"]
    assert node["processors"][0]["sep"] == ["</s>", 3]  # the input is left alone


def test_rewrite_bpe_json_renumbers_filters_merges_and_remaps_specials():
    """Kept tokens renumbered in id order, merges kept only with both parts and the result
    (in their original string format), added token, post-processor and pad id remapped."""
    tok = _bpe_json()
    tok["model"]["merges"] = [f"{a} {b}" for a, b in MERGES]
    tok["post_processor"] = {"type": "TemplateProcessing", "special_tokens": {"<s>": {"ids": [11]}}}
    tok["padding"] = {"pad_id": 11, "pad_token": "<s>"}
    original = copy.deepcopy(tok)
    out = rewrite_tokenizer_json(tok, [0, 1, 2, 5, 6, 8, 11])
    assert list(out["model"]["vocab"].items()) == [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("ab", 3),
        ("abc", 4),
        ("▁", 5),
        ("<s>", 6),
    ]
    assert out["model"]["merges"] == ["a b", "ab c"]  # not x y, b c (bc gone), ▁ ▁ (▁▁ gone)
    assert out["added_tokens"] == [{"id": 6, "content": "<s>", "special": True}]
    assert out["post_processor"]["special_tokens"]["<s>"]["ids"] == [6]
    assert out["padding"]["pad_id"] == 6
    assert tok == original


def test_rewrite_unigram_json_keeps_pieces_in_order_and_moves_unk_id():
    """Unigram pieces are kept by position; unk_id and an added token past the pieces follow."""
    tok = {
        "model": {
            "type": "Unigram",
            "unk_id": 1,
            "vocab": [["a", -1.0], ["<unk>", 0.0], ["b", -2.0], ["ab", -1.5]],
        },
        "added_tokens": [{"id": 4, "content": "<s>"}],
    }
    out = rewrite_tokenizer_json(tok, [1, 2, 4])
    assert out["model"]["vocab"] == [["<unk>", 0.0], ["b", -2.0]]
    assert out["model"]["unk_id"] == 0
    assert out["added_tokens"] == [{"id": 2, "content": "<s>"}]


def test_special_ids_collect_every_token_id_key_and_nothing_else():
    """`*_token_id(s)` and `*_token_index`, ints or lists, id 0 included, negatives and None out."""
    cfg = SimpleNamespace(
        bos_token_id=0,
        eos_token_id=[2, 7],
        pad_token_id=None,
        image_token_index=9,
        decoder_start_token_id=-1,
        sep_token_ids=(4,),
        vocab_size=50,
        token_id_offset=60,
    )
    gen = SimpleNamespace(eos_token_id=12)
    assert special_ids(None, cfg, gen) == {0, 2, 4, 7, 9, 12}


def test_remap_config_ids_rewrites_ids_keeps_types_and_refuses_a_dropped_one():
    """Ints and lists/tuples move to the new ids; unknown list members, negatives and other
    keys stay; a single id that was not kept is a bug, said in one line."""
    cfg = SimpleNamespace(
        bos_token_id=0,
        eos_token_id=[2, 7],
        suppress_token_ids=(7, 99),
        image_token_index=9,
        pad_token_id=-1,
        decoder_start_token_id=None,
        vocab_size=50,
    )
    remap_config_ids(cfg, {0: 5, 2: 1, 7: 2, 9: 3, 50: 4})
    assert vars(cfg) == {
        "bos_token_id": 5,
        "eos_token_id": [1, 2],
        "suppress_token_ids": (2, 99),
        "image_token_index": 3,
        "pad_token_id": -1,
        "decoder_start_token_id": None,
        "vocab_size": 50,
    }
    with pytest.raises(
        PrunekitError, match="config eos_token_id=5 names a token that was not kept"
    ):
        remap_config_ids(SimpleNamespace(eos_token_id=5), {0: 0})
    remap_config_ids(None, {})


class _TinyLM(nn.Module):
    """An embedding and an output head with a bias: just what slice_vocab_rows touches."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 3, padding_idx=4)
        self.head = nn.Linear(3, 6, bias=not tied)
        if tied:
            self.head.weight = self.embed.weight
        self.config = SimpleNamespace(vocab_size=6)


ADAPTER = SimpleNamespace(
    embed_tokens=lambda m: m.embed,
    lm_head=lambda m: m.head,
    tied_embeddings=lambda m: m.head.weight is m.embed.weight,
)


@torch.no_grad()
def test_slice_vocab_rows_moves_rows_bias_and_padding_index():
    """Untied with a head bias: rows 1, 3, 4 of everything, padding 4 → 2, frozen stays frozen."""
    model = _TinyLM(tied=False)
    model.embed.weight.requires_grad_(False)
    emb, head, bias = (t.clone() for t in (model.embed.weight, model.head.weight, model.head.bias))
    assert _head_params(model, ADAPTER) == 36
    slice_vocab_rows(model, ADAPTER, [1, 3, 4])
    assert torch.equal(model.embed.weight, emb[[1, 3, 4]])
    assert torch.equal(model.head.weight, head[[1, 3, 4]])
    assert torch.equal(model.head.bias, bias[[1, 3, 4]])
    assert model.embed.padding_idx == 2
    assert (model.embed.num_embeddings, model.head.out_features, model.config.vocab_size) == (
        3,
        3,
        3,
    )
    assert not model.embed.weight.requires_grad and not model.head.weight.requires_grad
    assert _head_params(model, ADAPTER) == 18

    model = _TinyLM(tied=False)
    slice_vocab_rows(model, ADAPTER, [0, 1])
    assert model.embed.padding_idx is None  # the padding row is gone


@torch.no_grad()
def test_slice_vocab_rows_keeps_tied_weights_tied_and_refuses_missing_rows():
    """Tied: one tensor sliced once and shared; an id equal to the row count is a clear error."""
    model = _TinyLM(tied=True)
    emb = model.embed.weight.clone()
    assert _head_params(model, ADAPTER) == 18
    slice_vocab_rows(model, ADAPTER, [2, 5])
    assert model.head.weight is model.embed.weight
    assert torch.equal(model.embed.weight, emb[[2, 5]])
    assert _head_params(model, ADAPTER) == 6
    with pytest.raises(PrunekitError, match="ids up to 6 but the embedding has 6 rows"):
        slice_vocab_rows(_TinyLM(tied=True), ADAPTER, [0, 6])
