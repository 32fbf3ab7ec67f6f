"""Shared by the GGUF export tests: tiny random models with the test BPE tokenizer, saved as
prunekit saves, and a GGUF file read back (metadata, dequantized tensors)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from conftest import TINY, _train_tokenizer
from prunekit.export.checkpoint import save_checkpoint

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TEMPLATE = "{% for m in messages %}<|endoftext|>{{ m['content'] }}{% endfor %}"


def tiny(arch: str, seed: int = 0, vocab: int = 320, **extra):
    """A tiny random model of `arch` sized to the test BPE tokenizer (q/k/v biases random)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = _train_tokenizer(vocab)
    config = AutoConfig.for_model(arch, **{**TINY, "vocab_size": len(tokenizer), **extra})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model, tokenizer


def save(model, tokenizer, folder: Path, template: str | None = None) -> Path:
    save_checkpoint(model, tokenizer, folder)
    if template:
        (folder / "chat_template.jinja").write_text(template)
    return folder


def fields(path: Path) -> dict:
    return {k: f.contents() for k, f in GGUFReader(str(path)).fields.items()}


def tensors(path: Path) -> dict:
    """name → (type name, float32 values in transformers' row-major shape)."""
    out = {}
    for t in GGUFReader(str(path)).tensors:
        values = dequantize(t.data, t.tensor_type).reshape(list(reversed(t.shape.tolist())))
        out[t.name] = (t.tensor_type.name, values)
    return out


def unpermute(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's adjacent-pair order back to transformers' halves (independent inverse)."""
    hd = rows.shape[0] // heads
    return rows.reshape(heads, hd // 2, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)
