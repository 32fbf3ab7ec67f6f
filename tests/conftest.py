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


def skip_layers(model, drop):
    """Ground truth for depth pruning: a copy of the model with layers `drop` replaced by the identity."""
    import copy

    ref = copy.deepcopy(model)
    for i in drop:
        ref.model.layers[i].forward = lambda h, *a, **k: h
    return ref


def linear_input_norms(model, ids: torch.Tensor, batch: int = 2) -> dict[str, torch.Tensor]:
    """Brute force: every decoder Linear's input L2 norm per channel over whole-model forwards
    (float64 sums), keyed `layers.{i}.{name}`."""
    from prunekit.models.adapters import adapter_for

    adapter = adapter_for(model)
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(adapter.layers(model)):
        for n, lin in adapter.linears(layer).items():

            def hook(_m, inp, key=f"layers.{i}.{n}"):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double().pow(2).sum(0)
                sums[key] = sums[key] + x if key in sums else x

            handles.append(lin.register_forward_pre_hook(hook))
    with torch.no_grad():
        for part in ids.split(batch):
            model(part)
    for h in handles:
        h.remove()
    return {k: v.sqrt() for k, v in sums.items()}


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


@pytest.fixture
def answering(monkeypatch, tmp_path):
    """The model "answers" instructions with code that runs (generation faked, the sandbox real),
    so `answered:python` gives checked answers offline and fast."""
    from tests.search.search_helpers import BODIES

    from prunekit.evaluation.generation import Generation

    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))

    def fake(model, tokenizer, prompts, **kw):
        return [[Generation(BODIES[i % 2], 5)] for i in range(len(prompts))], {}

    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", fake)
