"""Cut documents into fixed-length token windows: seeded for calibration, sequential for evaluation."""

from __future__ import annotations

import random
from collections.abc import Iterable

import torch

from prunekit.data.sources import Source
from prunekit.errors import PrunekitError

SEPARATOR = "\n\n"
EVAL_SEED = 0


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer itself prepends BOS (then windows start with BOS, else never)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("x").input_ids
    return bool(ids) and ids[0] == bos


def _spread_stream(tokenizer, docs: Iterable[str], body: int, needed: int, seed: int) -> list[int]:
    """Tokens from many documents, visited in a seeded order: each round takes one unused
    `body`-sized chunk (in a seeded order) of every document, so no file supplies a second window
    before all have supplied one.

    Taking the first `needed` tokens of the shuffled documents instead lets one large file (a data
    table, say) fill the whole calibration or evaluation set.
    """
    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    sep = tokenizer(SEPARATOR, add_special_tokens=False).input_ids
    stream: list[int] = []
    chunks: list[list[list[int]]] = []  # per document, its remaining chunks in the order used
    for text in docs:  # round 0 tokenizes lazily: usually only a few dozen documents are needed
        ids = tokenizer(text, add_special_tokens=False).input_ids
        parts = [ids[i : i + body] for i in range(0, len(ids), body)]
        rng.shuffle(parts)
        if parts:
            stream.extend(parts.pop())
            stream.extend(sep)
        chunks.append(parts)
        if len(stream) >= needed:
            return stream
    while any(chunks) and len(stream) < needed:
        for parts in chunks:
            if parts:
                stream.extend(parts.pop())
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
    source: Source, tokenizer, samples: int, seq_len: int, seed: int
) -> torch.Tensor:
    """`samples` non-overlapping windows of `seq_len` tokens spread over the documents (seeded)."""
    if samples < 1 or seq_len < 2:
        raise PrunekitError("need --calib-samples ≥ 1 and --seq-len ≥ 2")
    docs = list(source.documents(tokenizer))
    if not docs:
        raise PrunekitError(
            f"calibration data '{source.name}' is empty; give files with text in them"
        )
    bos = tokenizer.bos_token_id if adds_bos(tokenizer) else None
    body = seq_len - (1 if bos is not None else 0)
    stream = _spread_stream(tokenizer, docs, body, samples * body, seed)
    if len(stream) < samples * body:
        have = len(stream) // body
        raise PrunekitError(
            f"calibration data '{source.name}' has {len(stream)} tokens, fewer than {samples} windows × "
            f"{seq_len} tokens (room for {have}); lower --calib-samples / --seq-len or add data"
        )
    return _windows(stream, samples, seq_len, bos)


def evaluation_windows(source: Source, tokenizer, seq_len: int, max_tokens: int) -> torch.Tensor:
    """Non-overlapping windows spread over the documents, up to `max_tokens` tokens.

    The order is fixed (seed 0, independent of the calibration seed), so every model and run is
    evaluated on exactly the same tokens; a budget at least the corpus size covers all of it.
    """
    bos = tokenizer.bos_token_id if adds_bos(tokenizer) else None
    body = seq_len - (1 if bos is not None else 0)
    stream = _spread_stream(tokenizer, source.documents(tokenizer), body, max_tokens, EVAL_SEED)
    count = min(len(stream), max_tokens) // body
    if count == 0:
        raise PrunekitError(
            f"evaluation data '{source.name}' has {len(stream)} tokens, fewer than one window of {seq_len}; "
            "lower --ppl-seq-len or add data"
        )
    return _windows(stream, count, seq_len, bos)
