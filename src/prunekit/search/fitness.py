"""Fitness: KL(dense ‖ candidate) of the next-token distribution on the answer tokens of the
held-out split of the model's own checked answers, for a stitched candidate.

The split's sequences are captured once (block 0's input and every layer's call arguments);
a candidate is its variant modules run over that stream, then the dense model's final norm and
head at the weighted positions only. The dense side is stored once: exact log-probabilities when
rows × vocabulary × 4 bytes fit `exact_bytes`, else its top-k log-probabilities plus one bucket
for the rest of the mass (the KL of the two distributions coarsened to k + 1 outcomes, a lower
bound of the exact KL by the data-processing inequality).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.calibration.engine import LayerwiseEngine, _first
from prunekit.models.adapters import DecoderAdapter
from prunekit.search.levels import VariantCache

EXACT_BYTES = 1 << 30


@dataclass
class Target:
    """The dense distribution at one sequence's scored rows: exact log-probs, or top-k + rest."""

    logp: torch.Tensor  # rows × V (exact) or rows × k (top-k)
    index: torch.Tensor | None = None  # rows × k token ids (top-k only)
    rest: torch.Tensor | None = None  # rows: log of the mass outside the top k

    def kl(self, logq: torch.Tensor) -> torch.Tensor:
        """Per-row KL(p ‖ q) from the candidate's log-probs (rows × V)."""
        if self.index is None:
            return (self.logp.exp() * (self.logp - logq)).sum(-1)
        q_top = logq.gather(1, self.index)
        rest_q = torch.log1p(-q_top.exp().sum(-1).clamp(max=1 - 1e-7))
        top = (self.logp.exp() * (self.logp - q_top)).sum(-1)
        return top + self.rest.exp() * (self.rest - rest_q)


def _target(logp: torch.Tensor, topk: int) -> Target:
    if topk <= 0 or topk >= logp.shape[-1]:
        return Target(logp)
    values, index = logp.topk(topk, dim=-1)
    rest = torch.log1p(-values.exp().sum(-1).clamp(max=1 - 1e-7))
    return Target(values, index, rest)


class Evaluator:
    """Runs stitched candidates over the captured fitness split and scores them."""

    def __init__(
        self,
        model: nn.Module,
        adapter: DecoderAdapter,
        sequences: list[torch.Tensor],
        weights: list[torch.Tensor],
        cache: VariantCache,
        topk: int | None = None,
        exact_bytes: int = EXACT_BYTES,
    ) -> None:
        self.model, self.adapter, self.cache = model, adapter, cache
        engine = LayerwiseEngine(model, adapter, sequences, "cpu", progress=False)
        self.h0, self.calls = engine.capture()
        self.rows = [torch.nonzero(w.reshape(-1) > 0).flatten() for w in weights]
        self.picked = [w.reshape(-1)[r].double() for w, r in zip(weights, self.rows)]
        self.tokens = [int(r.numel()) for r in self.rows]
        self.layer_passes = 0
        vocab = adapter.lm_head(model).weight.shape[0]
        if topk is None:
            topk = 0 if sum(self.tokens) * vocab * 4 <= exact_bytes else 128
        self.topk = topk
        dense = [0] * len(adapter.layers(model))
        self.targets = [_target(lp, topk) for lp in self._logprobs(dense, range(len(sequences)))]

    @torch.no_grad()
    def _logprobs(self, genome, seqs) -> list[torch.Tensor]:
        modules = [self.cache.module(i, g) for i, g in enumerate(genome)]
        out = []
        for s in seqs:
            h = self.h0[s]
            for i, m in enumerate(modules):
                if m is not None:
                    call = self.calls[i][s]
                    h = _first(m(h, *call.args, **call.kwargs))
                    self.layer_passes += 1
            rows = h.reshape(-1, h.shape[-1])[self.rows[s]][None]
            out.append(torch.log_softmax(self.adapter.logits(self.model, rows).float(), -1)[0])
        return out

    @torch.no_grad()
    def hidden(self, genome, s: int) -> torch.Tensor:
        """The candidate's final hidden state of sequence `s` (before the final norm)."""
        h = self.h0[s]
        for i, g in enumerate(genome):
            m = self.cache.module(i, g)
            if m is not None:
                call = self.calls[i][s]
                h = _first(m(h, *call.args, **call.kwargs))
        return h

    def fitness(self, genome, seqs) -> float:
        """Weighted mean KL over the scored rows of sequences `seqs`."""
        seqs = list(seqs)
        total = count = 0.0
        for s, logq in zip(seqs, self._logprobs(genome, seqs)):
            w = self.picked[s]
            total += float((w * self.targets[s].kl(logq).double()).sum())
            count += float(w.sum())
        return total / count


def stage_sequences(tokens: list[int], fraction: float, rng: random.Random) -> list[int]:
    """Sequences (shuffled by `rng`) until their scored tokens reach `fraction` of the total;
    all of them, in order, at fraction 1."""
    if fraction >= 1:
        return list(range(len(tokens)))
    order = list(range(len(tokens)))
    rng.shuffle(order)
    need, got, out = fraction * sum(tokens), 0, []
    for s in order:
        out.append(s)
        got += tokens[s]
        if got >= need:
            break
    return sorted(out)
