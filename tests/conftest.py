"""Shared fixtures: tiny randomly initialised models of every supported architecture."""

from __future__ import annotations

import pytest
import torch

TINY = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    tie_word_embeddings=False,
)


def tiny_config(arch: str):
    from transformers import (
        Gemma3TextConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
        Qwen3Config,
    )

    if arch == "llama":
        return LlamaConfig(**TINY)
    if arch == "qwen2":
        return Qwen2Config(**TINY)
    if arch == "qwen3":
        return Qwen3Config(**TINY, head_dim=8)
    if arch == "mistral":
        return MistralConfig(**TINY)
    if arch == "gemma3":
        return Gemma3TextConfig(
            **{**TINY, "num_hidden_layers": 4},
            head_dim=8,
            sliding_window=8,
            layer_types=[
                "sliding_attention",
                "full_attention",
                "sliding_attention",
                "full_attention",
            ],
            final_logit_softcapping=30.0,
        )
    raise ValueError(arch)


ARCHS = ["llama", "qwen2", "qwen3", "mistral", "gemma3"]


def tiny_model(arch: str = "llama", seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch), dtype=torch.float32)
    return model.eval()


@pytest.fixture(params=ARCHS)
def any_tiny_model(request):
    return tiny_model(request.param)


@pytest.fixture
def tiny_llama():
    return tiny_model("llama")


def _train_tokenizer(vocab_size: int = 320):
    """A small byte-level BPE tokenizer trained on a few stdlib files (no download needed)."""
    import sysconfig
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / name).read_text() for name in ("textwrap.py", "bisect.py", "heapq.py")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny llama checkpoint with a real (small) BPE tokenizer: a stand-in for a real model."""
    tokenizer = _train_tokenizer()
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY, "vocab_size": len(tokenizer)})
    model = AutoModelForCausalLM.from_config(config)
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
