"""Speed, memory, size and compute of a model: what a prune actually buys at inference time.

Throughputs are medians of several timed repetitions after warm-up. Prefill: one forward
pass over a fixed-length prompt (batch 1). Decode: greedy single-token steps with the KV
cache after a short prompt, at batch 1 and at a larger batch (prefill not timed).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prunekit.models.adapters import adapter_for
from prunekit.utils import peak_rss_mb


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_ids(vocab: int, batch: int, length: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = min(100, vocab - 1)
    return torch.randint(low, vocab, (batch, length), generator=g).to(device)


def _cached_step(model, ids: torch.Tensor, cache=None):
    """One forward with a KV cache; returns (cache, greedy next tokens). Handles both the
    `cache=` (transformers >= 5.2x) and `past_key_values=` spellings."""
    import inspect

    params = inspect.signature(model.forward).parameters
    key = "cache" if "cache" in params else "past_key_values"
    kwargs = {key: cache} if cache is not None else {}
    out = model(input_ids=ids, use_cache=True, **kwargs)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    return new_cache, out.logits[:, -1].argmax(-1, keepdim=True)


@torch.inference_mode()
def time_prefill(
    model, device, prompt_len: int, repeats: int, warmup: int, seed: int = 0
) -> list[float]:
    ids = _random_ids(model.config.vocab_size, 1, prompt_len, seed, device)
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        t = time.perf_counter()
        model(input_ids=ids, use_cache=True)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


@torch.inference_mode()
def time_decode(
    model, device, batch: int, context: int, steps: int, repeats: int, warmup: int, seed: int = 0
) -> list[float]:
    """Seconds for `steps` cached greedy decode steps at `batch` (prefill excluded)."""
    ids = _random_ids(model.config.vocab_size, batch, context, seed, device)
    times = []
    for i in range(warmup + repeats):
        past, nxt = _cached_step(model, ids)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            past, nxt = _cached_step(model, nxt, past)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def param_counts(model) -> dict[str, int]:
    """Total and non-zero parameters (tied tensors counted once)."""
    total = nonzero = 0
    for p in model.parameters():  # parameters() already skips shared tensors
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    return {"total": total, "nonzero": nonzero}


def flops_per_token(model, context: int) -> dict:
    """Forward FLOPs to generate one token at a given context length, from the architecture:
    2 × (decoder Linear weights + lm_head) + attention scores/values 4 × layers × heads ×
    head_dim × context. `ideal_sparse` counts only non-zero weights (what sparse kernels could
    reach; dense kernels still do the dense amount)."""
    adapter = adapter_for(model)
    cfg = model.config
    dense = nonzero = 0
    for layer in adapter.layers(model):
        for lin in adapter.linears(layer).values():
            dense += lin.weight.numel()
            nonzero += int(torch.count_nonzero(lin.weight))
    head = adapter.lm_head(model).weight
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    attn = 4 * cfg.num_hidden_layers * heads * head_dim * context
    return {
        "context": context,
        "dense": 2 * (dense + head.numel()) + attn,
        "ideal_sparse": 2 * (nonzero + int(torch.count_nonzero(head))) + attn,
        "linear_weights": dense,
        "linear_nonzero": nonzero,
        "formula": "2*(decoder linears + lm_head) + 4*layers*heads*head_dim*context",
    }


def checkpoint_path(spec: str) -> Path | None:
    """Where MODEL's files live on disk (built-in cache folder, local folder or .gguf)."""
    from prunekit.models.registry import BUILTIN_MODELS, builtin_dir

    if spec in BUILTIN_MODELS:
        return builtin_dir(spec)
    path = Path(spec).expanduser()
    return path if path.exists() else None


def disk_size(path: Path | None) -> dict:
    """Bytes on disk: all files of the checkpoint, and the weight files alone."""
    if path is None:
        return {"path": None, "bytes": None, "weights_bytes": None}
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".gguf", ".bin", ".pt")]
    return {
        "path": str(path),
        "bytes": sum(p.stat().st_size for p in files),
        "weights_bytes": sum(p.stat().st_size for p in weights),
    }


def memory_snapshot(device: torch.device) -> dict:
    out = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if device.type == "cuda":
        out["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out["gpu_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return out


def _median_rate(tokens: int, times: list[float]) -> dict:
    med = statistics.median(times)
    return {
        "tokens_per_s": round(tokens / med, 2),
        "median_s": round(med, 5),
        "runs_s": [round(t, 5) for t in times],
    }


def measure_speed(
    model,
    device: torch.device | str = "cpu",
    *,
    spec: str | None = None,
    prompt_len: int = 256,
    decode_context: int = 64,
    decode_steps: int = 32,
    batch_sizes: tuple[int, ...] = (1, 8),
    repeats: int = 5,
    warmup: int = 1,
    progress: bool = True,
) -> dict:
    """Prefill/decode throughput, memory, parameters, size on disk and FLOPs per token."""
    if getattr(model, "generates_itself", False):  # a GGUF run by llama.cpp (llamacpp_eval)
        return model.speed(
            spec=spec,
            prompt_len=prompt_len,
            decode_context=decode_context,
            decode_steps=decode_steps,
            repeats=repeats,
            warmup=warmup,
            progress=progress,
        )
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps = 1 + len(batch_sizes)
    with tqdm(total=steps, desc="speed", disable=not progress) as bar:
        prefill = time_prefill(model, device, prompt_len, repeats, warmup)
        bar.update()
        decode = {}
        for b in batch_sizes:
            times = time_decode(model, device, b, decode_context, decode_steps, repeats, warmup)
            decode[f"batch_{b}"] = {"batch": b, **_median_rate(b * decode_steps, times)}
            bar.update()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    params = param_counts(model)
    dtype = next(model.parameters()).dtype
    return {
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "repeats": repeats,
        "warmup": warmup,
        "prefill": {"prompt_len": prompt_len, "batch": 1, **_median_rate(prompt_len, prefill)},
        "decode": {"context": decode_context, "steps": decode_steps, **decode},
        "memory": {
            **memory_snapshot(device),
            "weights_in_memory_mb": round(param_bytes / 2**20, 1),
        },
        "params": params,
        "disk": disk_size(checkpoint_path(spec)) if spec else disk_size(None),
        "sparse_storage_estimate_bytes": params["nonzero"] * torch.finfo(dtype).bits // 8
        + params["total"] // 8,
        "flops_per_token": flops_per_token(model, decode_context),
    }
