"""Held-out perplexity over non-overlapping windows, batched, with the head applied in chunks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prunekit.models.adapters import DecoderAdapter


@torch.no_grad()
def window_nll(model: nn.Module, adapter: DecoderAdapter, ids: torch.Tensor) -> tuple[float, int]:
    """Summed next-token negative log-likelihood of a batch of windows, and the tokens scored."""
    decoder = adapter.decoder(model)
    hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
    head = adapter.lm_head(model)
    cap = (
        getattr(model.config, adapter.final_softcap_attr, None)
        if adapter.final_softcap_attr
        else None
    )
    total = 0.0
    for row in range(ids.shape[0]):  # one window at a time keeps the vocab-sized logits small
        logits = head(hidden[row, :-1]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        total += float(F.cross_entropy(logits, ids[row, 1:], reduction="sum"))
    return total, ids.shape[0] * (ids.shape[1] - 1)


def perplexity(
    model: nn.Module,
    adapter: DecoderAdapter,
    windows: torch.Tensor,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "perplexity",
) -> dict:
    """exp(mean NLL) over all windows; also the token count and window length for the report."""
    nll, tokens = 0.0, 0
    starts = range(0, windows.shape[0], batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        part_nll, part_tokens = window_nll(
            model, adapter, windows[start : start + batch_size].to(device)
        )
        nll += part_nll
        tokens += part_tokens
    return {
        "ppl": math.exp(nll / tokens),
        "nll": nll / tokens,
        "tokens": tokens,
        "windows": int(windows.shape[0]),
        "seq_len": int(windows.shape[1]),
    }
