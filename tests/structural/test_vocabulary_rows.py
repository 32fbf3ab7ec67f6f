"""Vocabulary pruning moves embedding and head rows with their tokens: keeping the first n rows, or
rows in another order, would still tokenize correctly but give a different model."""

from __future__ import annotations

import copy

import pytest
import torch
from test_vocabulary import _python_texts, _trained_tokenizer

from prunekit.models.adapters import adapter_for
from prunekit.structural.vocabulary import prune_vocabulary


def tiny_llama(vocab_size: int, tied: bool):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
    )
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("tied", [False, True])
def test_rows_follow_their_tokens_and_in_domain_logits_are_unchanged(tied):
    tokenizer = _trained_tokenizer("bpe")
    model = tiny_llama(len(tokenizer), tied)
    original = copy.deepcopy(model)
    corpus = _python_texts()
    new_tok, _ = prune_vocabulary(model, tokenizer, adapter_for(model), corpus)
    old_vocab, new_vocab = tokenizer.get_vocab(), new_tok.get_vocab()
    assert len(new_vocab) < len(old_vocab)
    # new id -> old id, by token string (not by anything the pruner reports)
    old_ids = torch.tensor([old_vocab[t] for t, _ in sorted(new_vocab.items(), key=lambda x: x[1])])
    assert old_ids.tolist() != list(range(len(old_ids)))  # not just the first n rows
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert torch.equal(emb, original.get_input_embeddings().weight[old_ids])
    assert torch.equal(head, original.get_output_embeddings().weight[old_ids])
    assert (head is emb) == tied

    text = corpus[0][:1500]
    new_ids = new_tok(text, return_tensors="pt").input_ids
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(old_ids[new_ids], ids)
    with torch.no_grad():
        logits = model(new_ids).logits
        expected = original(ids).logits[..., old_ids]
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
