"""Cut documents into fixed-length token windows: seeded for calibration, sequential for evaluation."""

from __future__ import annotations

import random

import torch

from prunekit.data.sources import TextSource
from prunekit.errors import PrunekitError

SEPARATOR = "\n\n"


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer itself prepends BOS (then windows start with BOS, else never)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("x").input_ids
    return bool(ids) and ids[0] == bos


def _token_stream(tokenizer, texts, needed: int) -> list[int]:
    stream: list[int] = []
    sep = tokenizer(SEPARATOR, add_special_tokens=False).input_ids
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False).input_ids)
        stream.extend(sep)
        if len(stream) >= needed:
            break
    return stream


def _windows(stream: list[int], count: int, seq_len: int, bos: int | None) -> torch.Tensor:
    body = seq_len - (1 if bos is not None else 0)
    rows = [stream[i * body : (i + 1) * body] for i in range(count)]
    if bos is not None:
        rows = [[bos, *r] for r in rows]
    return torch.tensor(rows, dtype=torch.long)


def calibration_windows(
    source: TextSource, tokenizer, samples: int, seq_len: int, seed: int
) -> torch.Tensor:
    """`samples` non-overlapping windows of `seq_len` tokens from the documents in a seeded order."""
    if samples < 1 or seq_len < 2:
        raise PrunekitError("need --calib-samples ≥ 1 and --seq-len ≥ 2")
    docs = list(source.documents())
    if not docs:
        raise PrunekitError(
            f"calibration data '{source.name}' is empty; give files with text in them"
        )
    random.Random(seed).shuffle(docs)
    bos = tokenizer.bos_token_id if adds_bos(tokenizer) else None
    body = seq_len - (1 if bos is not None else 0)
    stream = _token_stream(tokenizer, docs, samples * body)
    if len(stream) < samples * body:
        have = len(stream) // body
        raise PrunekitError(
            f"calibration data '{source.name}' has {len(stream)} tokens, fewer than {samples} windows × "
            f"{seq_len} tokens (room for {have}); lower --calib-samples / --seq-len or add data"
        )
    return _windows(stream, samples, seq_len, bos)


def evaluation_windows(
    source: TextSource, tokenizer, seq_len: int, max_tokens: int
) -> torch.Tensor:
    """Non-overlapping windows over the documents in file order, up to `max_tokens` tokens."""
    bos = tokenizer.bos_token_id if adds_bos(tokenizer) else None
    body = seq_len - (1 if bos is not None else 0)
    stream = _token_stream(tokenizer, source.documents(), max_tokens)
    count = min(len(stream), max_tokens) // body
    if count == 0:
        raise PrunekitError(
            f"evaluation data '{source.name}' has {len(stream)} tokens, fewer than one window of {seq_len}; "
            "lower --ppl-seq-len or add data"
        )
    return _windows(stream, count, seq_len, bos)
