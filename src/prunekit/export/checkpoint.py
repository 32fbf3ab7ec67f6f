"""Save a (pruned) model as a safetensors checkpoint that loads without prunekit.

Widths are read from the weights: equal in every layer → the plain stock family with its config
sizes updated; different per layer → the stock config plus per-layer lists and a small modeling
file loaded with trust_remote_code=True (export/per_layer.py says why).
"""

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
    """Write model weights (safetensors), config (sizes from the weights) and tokenizer into
    `out_dir` (callers pass a temporary folder and rename it when this returns)."""
    from prunekit.export.per_layer import write_widths

    strip_quantizer(model)
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = model.to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    write_widths(model, Path(out_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
