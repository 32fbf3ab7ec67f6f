"""Held-out perplexity over non-overlapping windows, batched, with the head applied in chunks."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prunekit.models.adapters import DecoderAdapter


@torch.no_grad()
def window_nll(model: nn.Module, adapter: DecoderAdapter, ids: torch.Tensor) -> list[float]:
    """Summed next-token negative log-likelihood of each window in a batch."""
    decoder = adapter.decoder(model)
    hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
    head = adapter.lm_head(model)
    sums = []
    for row in range(ids.shape[0]):  # one window at a time keeps the vocab-sized logits small
        logits = adapter.finish_logits(model, head(hidden[row, :-1]).float())
        sums.append(float(F.cross_entropy(logits, ids[row, 1:], reduction="sum")))
    return sums


def perplexity(
    model: nn.Module,
    adapter: DecoderAdapter,
    windows: torch.Tensor,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "perplexity",
) -> dict:
    """exp(mean NLL) over all windows (see `score_windows`), scored by `model` in torch."""

    def batch_nll(ids: torch.Tensor) -> list[float]:
        return window_nll(model, adapter, ids.to(device))

    return score_windows(windows, batch_nll, batch_size, progress, desc)


def score_windows(
    windows: torch.Tensor,
    batch_nll: Callable[[torch.Tensor], list[float]],
    batch_size: int = 4,
    progress: bool = True,
    desc: str = "perplexity",
) -> dict:
    """exp(mean NLL) over all windows, `batch_nll` giving each batch's summed NLL per window;
    also the token count, window length and each window's mean NLL (for paired comparisons of
    two models on the same windows: `paired_nll_difference`)."""
    sums: list[float] = []
    starts = range(0, windows.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        sums += batch_nll(windows[start : start + batch_size])
    per_window = windows.shape[1] - 1
    tokens = per_window * len(sums)
    nll = sum(sums) / tokens
    return {
        "ppl": math.exp(nll),
        "nll": nll,
        "tokens": tokens,
        "windows": int(windows.shape[0]),
        "seq_len": int(windows.shape[1]),
        "window_nll": [s / per_window for s in sums],
    }


def paired_nll_difference(a: list[float], b: list[float]) -> dict:
    """Mean per-window NLL difference a − b and its standard error (same windows, paired).

    |mean| < 2·se means the two perplexities are not distinguishable on this many windows.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("paired comparison needs the same ≥ 2 windows for both models")
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    return {"mean": float(d.mean()), "se": float(d.std() / math.sqrt(len(d))), "windows": len(d)}
