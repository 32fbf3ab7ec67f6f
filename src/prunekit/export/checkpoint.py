"""Save a (pruned) model as a plain safetensors checkpoint: no prunekit needed to load it."""

from __future__ import annotations

from pathlib import Path

import torch


def strip_quantizer(model: torch.nn.Module) -> None:
    """Forget the GGUF loader state: the weights are already dequantized, plain tensors."""
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    clean_config(model.config)


def clean_config(config) -> None:
    """Drop loader-only settings (the GGUF quantization note) so the folder loads as a plain model."""
    if getattr(config, "quantization_config", None) is not None:
        config.quantization_config = None
        if hasattr(config, "__dict__"):
            config.__dict__.pop("quantization_config", None)
    config.architectures = [config.architectures[0]] if config.architectures else None


def save_checkpoint(
    model: torch.nn.Module, tokenizer, out_dir: Path, dtype: torch.dtype | None = None
) -> None:
    """Write model weights (safetensors), config and tokenizer into `out_dir`."""
    strip_quantizer(model)
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = model.to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
