"""A tiny random config for every adapter family (the contract test requires one per adapter)."""

from __future__ import annotations

import torch

from conftest import TINY, tiny_config


def _starcoder2():
    from transformers import Starcoder2Config

    # plain (non-gated) MLP c_fc/c_proj and every projection with a bias
    return Starcoder2Config(
        **TINY, use_bias=True, sliding_window=None, bos_token_id=0, eos_token_id=0
    )


def _phi3():
    from transformers import Phi3Config

    # fused qkv_proj (with grouped-query k/v) and fused gate_up_proj
    return Phi3Config(**TINY, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def _granite():
    from transformers import GraniteConfig

    # llama-shaped, with every multiplier away from 1 so a missed one shows
    return GraniteConfig(
        **TINY,
        embedding_multiplier=3.0,
        residual_multiplier=0.5,
        attention_multiplier=0.2,
        logits_scaling=4.0,
    )


FAMILIES = {
    "llama": lambda: tiny_config("llama"),
    "qwen2": lambda: tiny_config("qwen2"),
    "qwen3": lambda: tiny_config("qwen3"),
    "mistral": lambda: tiny_config("mistral"),
    "gemma3": lambda: tiny_config("gemma3"),
    "starcoder2": _starcoder2,
    "phi3": _phi3,
    "granite": _granite,
}
NEW_FAMILIES = ("starcoder2", "phi3", "granite")


def tiny_family_model(family: str, seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(FAMILIES[family](), dtype=torch.float32)
    return model.eval()
