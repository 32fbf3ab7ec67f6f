"""Save a (pruned) model as a safetensors checkpoint that loads without prunekit.

Widths are read from the weights: equal in every layer → the plain stock family with its config
sizes updated; different per layer → the stock config plus per-layer lists and a small modeling
file loaded with trust_remote_code=True (export/per_layer.py says why).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
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


_SKIP_WEIGHTS: contextvars.ContextVar[bool] = contextvars.ContextVar("skip_weights", default=False)


@contextlib.contextmanager
def weights_skipped() -> Iterator[None]:
    """Within the block `save_checkpoint` writes config and tokenizer but no weights: what a
    save that cannot fit the weights anywhere still keeps (see utils.write_output)."""
    token = _SKIP_WEIGHTS.set(True)
    try:
        yield
    finally:
        _SKIP_WEIGHTS.reset(token)


def skipping_weights() -> bool:
    """Whether saves now keep no weights (inside `weights_skipped`)."""
    return _SKIP_WEIGHTS.get()


def weights_bytes(model: torch.nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes the model's tensors take on disk (tied tensors once), in `dtype` if given."""
    seen, total = set(), 0
    for tensor in model.state_dict().values():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if key in seen:
            continue
        seen.add(key)
        size = (dtype or tensor.dtype).itemsize if tensor.is_floating_point() else None
        total += tensor.numel() * (size or tensor.element_size())
    return total


def save_checkpoint(
    model: torch.nn.Module, tokenizer, out_dir: Path, dtype: torch.dtype | None = None
) -> None:
    """Write model weights (safetensors), config (sizes from the weights) and tokenizer into
    `out_dir` (callers pass a temporary folder and rename it when this returns). Free space is
    checked first (ENOSPC before a byte is written, so the caller's rescue applies)."""
    from prunekit.export.per_layer import write_widths
    from prunekit.utils import check_free_space

    strip_quantizer(model)
    skip = _SKIP_WEIGHTS.get()
    if not skip:
        check_free_space(Path(out_dir), weights_bytes(model, dtype))
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = model.to(dtype)
    if skip:
        model.config.save_pretrained(out_dir)
        (Path(out_dir) / "WEIGHTS_NOT_SAVED.txt").write_text(
            "The disk was full: this folder holds the run's report, config and tokenizer but "
            "not its weights. Free some space and run again.\n"
        )
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
        write_widths(model, Path(out_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
