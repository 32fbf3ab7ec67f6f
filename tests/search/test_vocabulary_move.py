"""The vocabulary move (issue 28): applied before the search, the fitness answers re-tokenized
with the pruned tokenizer decode to the same text, a size budget counts the smaller embeddings,
and a plan rebuilds the searched model bit for bit (tokenizer included)."""

from __future__ import annotations

import json

import pytest
import torch
from tests.search.search_helpers import SMALL, tiny_lm

import prunekit
from prunekit.models.adapters import adapter_for
from prunekit.search.config import SearchConfig
from prunekit.search.vocabulary import VocabularyMove

CODE = "def add(a, b):\n    return a + b\n\n\nclass Box:\n    def size(self):\n        return 0\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "vocab_corpus.py"
    path.write_text(CODE)
    return str(path)


def test_fitness_sequences_decode_to_the_same_text_after_the_cut(tiny_model_dir, answering, corpus):
    from prunekit.search.run import fitness_data

    model, tok = tiny_lm(tiny_model_dir)
    cfg = SearchConfig(budget="params=0.7", **SMALL)
    _, _, before = fitness_data(model, tok, cfg, False)
    new_tok, record = VocabularyMove(corpus).apply(model, tok, adapter_for(model))
    _, _, after = fitness_data(model, new_tok, cfg, False)
    assert record["tokens_kept"] < record["tokens_before"] == len(tok)
    assert len(new_tok) == record["tokens_kept"] == model.config.vocab_size
    assert len(before[0]) == len(after[0]) > 0
    for old, new in zip(before[0], after[0]):
        assert new_tok.decode(new[0].tolist()) == tok.decode(old[0].tolist())
        assert int(new.max()) < record["tokens_kept"]
    assert any(not torch.equal(a, b) for a, b in zip(before[0], after[0]))  # re-tokenized


def test_size_budget_counts_the_pruned_embeddings(tiny_model_dir, corpus):
    from prunekit.search.budget import parse_budget
    from prunekit.search.levels import build_space
    from prunekit.search.run import measure_budget

    model, tok = tiny_lm(tiny_model_dir)
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.5), (1.0,), 8, True)
    dense = [0] * len(space.layers)

    def dense_value(budget: str) -> int:
        return measure_budget(model, adapter, space, parse_budget(budget)).value(space.cost(dense))

    before = sum(p.numel() for p in model.parameters())
    params_before = dense_value("params=0.8")
    VocabularyMove(corpus).apply(model, tok, adapter)
    after = sum(p.numel() for p in model.parameters())
    assert after < before
    assert dense_value(f"size={int(after * 4 * 0.9)}") == after * 4  # float32 bytes, pruned rows
    assert dense_value("params=0.8") == params_before  # non-embedding: the move does not count


def test_plan_with_vocabulary_rebuilds_the_searched_model(tiny_model_dir, answering, corpus):
    from prunekit.search.run import rebuild

    model, tok = tiny_lm(tiny_model_dir)
    result = prunekit.search(
        model, tok, budget="params=0.7", vocabulary=corpus, max_generations=2, **SMALL
    )
    plan = json.loads(json.dumps(result.plan))  # as plan.json holds it
    assert plan["config"]["vocabulary"] == corpus
    assert plan["vocabulary"]["tokens_kept"] == len(result.tokenizer) < len(tok)
    assert result.report["search"]["vocabulary"]["tokens_kept"] == len(result.tokenizer)
    model2, tok2 = tiny_lm(tiny_model_dir)
    again = rebuild(model2, tok2, plan, progress=False)
    assert again.tokenizer.get_vocab() == result.tokenizer.get_vocab()
    sa, sb = model.state_dict(), model2.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
