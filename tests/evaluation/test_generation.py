"""Continuous-batching generation: the same greedy tokens as the re-queueing generator it replaced."""

from __future__ import annotations

import pytest
import torch
from generation_reference import generate_batched as reference_generate

from conftest import ARCHS, _train_tokenizer, tiny_config
from prunekit.evaluation.generation import generate_batched

PROMPTS = [
    "def add(a, b):\n    return",
    "x",
    "import heapq\n\ndef smallest(items, k):\n    '''Return the k smallest items.'''\n",
    "for i in range(10):",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):",
]


@pytest.fixture(scope="module")
def tokenizer():
    return _train_tokenizer()


def random_lm(arch: str, tokenizer, seed: int = 0):
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def texts(out) -> list[tuple[str, int]]:
    return [(g.text, g.new_tokens) for per in out for g in per]


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_tokens_equal_the_requeueing_generator(arch, tokenizer):
    """Rows join and leave a shared cache (gemma3: sliding layers of window 8) and still match."""
    model = random_lm(arch, tokenizer)
    new, stats = generate_batched(
        model, tokenizer, PROMPTS, max_new_tokens=24, batch_size=2, progress=False
    )
    old, _ = reference_generate(
        model, tokenizer, PROMPTS, max_new_tokens=24, batch_size=2, segment_tokens=7, progress=False
    )
    assert texts(new) == texts(old)
    assert stats["prefills"] > 1  # rows really joined a running batch


def test_stop_sequences_end_rows_like_before(tokenizer):
    model = random_lm("llama", tokenizer, seed=1)
    free, _ = generate_batched(model, tokenizer, PROMPTS, max_new_tokens=30, progress=False)
    pairs = {g.text[j : j + 2] for per in free for g in per for j in range(4, len(g.text) - 1)}
    stops = tuple(sorted(p for p in pairs if p.isascii() and p.isprintable()))[:2]
    new, _ = generate_batched(
        model, tokenizer, PROMPTS, max_new_tokens=30, batch_size=3, stops=stops, progress=False
    )
    old, _ = reference_generate(
        model, tokenizer, PROMPTS, max_new_tokens=30, batch_size=3, stops=stops, progress=False
    )
    assert [t for t, _ in texts(new)] == [t for t, _ in texts(old)]
    # the old generator counted the pad a stopped row got while its batch ran on as a token
    # when pad == EOS (as here); otherwise the counts agree
    stopped = [any(s in t for s in stops) for t, _ in texts(new)]
    assert any(stopped)
    extra = [o - n for (_, n), (_, o) in zip(texts(new), texts(old))]
    assert all(e in ((0, 1) if hit else (0,)) for e, hit in zip(extra, stopped))


def test_every_token_is_fed_once(tokenizer):
    """No re-prefill: the model sees each prompt once and each generated token (but the last) once."""
    model = random_lm("qwen2", tokenizer)
    prompts = ["q", "z", "k"]  # one byte, one token each
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    assert len(set(lengths)) == 1, "equal lengths, so prefills carry no padding"
    fed = []
    model.model.embed_tokens.register_forward_hook(lambda m, i, o: fed.append(i[0].numel()))
    out, stats = generate_batched(
        model, tokenizer, prompts, max_new_tokens=9, batch_size=2, progress=False
    )
    new_tokens = [g.new_tokens for per in out for g in per]
    assert sum(fed) == sum(lengths) + sum(new_tokens) - len(prompts)
    assert stats["generated_tokens"] == sum(new_tokens) > 0


def test_sampling_does_not_depend_on_batching(tokenizer):
    model = random_lm("llama", tokenizer)
    kwargs = dict(max_new_tokens=10, num_samples=3, temperature=1.0, seed=5, progress=False)
    wide, _ = generate_batched(model, tokenizer, PROMPTS[:3], batch_size=9, **kwargs)
    narrow, _ = generate_batched(model, tokenizer, PROMPTS[:3], batch_size=2, **kwargs)
    assert texts(wide) == texts(narrow)
    assert len({g.text for g in wide[0]}) > 1  # the samples of one prompt differ
    other, _ = generate_batched(
        model, tokenizer, PROMPTS[:3], batch_size=9, **{**kwargs, "seed": 6}
    )
    assert texts(other) != texts(wide)


def test_eos_ends_a_row_and_is_counted(tokenizer):
    """A model that always says EOS yields empty texts of one token each, with no decode step."""
    model = random_lm("llama", tokenizer)
    eos = torch.tensor([tokenizer.eos_token_id])
    model.lm_head.register_forward_hook(lambda m, i, o: o.index_fill(-1, eos, 1e4))
    out, stats = generate_batched(model, tokenizer, PROMPTS[:3], max_new_tokens=8, progress=False)
    assert [(g.text, g.new_tokens) for per in out for g in per] == [("", 1)] * 3
    assert stats["decode_steps"] == 0


def test_several_samples_need_a_temperature(tokenizer):
    model = random_lm("llama", tokenizer)
    with pytest.raises(ValueError, match="temperature"):
        generate_batched(model, tokenizer, ["a"], num_samples=2, progress=False)
