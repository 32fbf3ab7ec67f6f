"""Depth pruning: remove whole decoder layers greedily, re-scoring the remaining ones after each removal.

Criteria (lower score = less useful layer, removed first):
- `cosine`: block influence 1 − cos(h_in, h_out), mean over tokens;
- `angular`: arccos(cos(h_in, h_out)) / π, mean over tokens;
- `kl`: mean per-token KL(p_current ‖ p_without_layer) of the next-token distribution.
With `last_token`, only the last position of each calibration window is scored; with `weights`
(one B × T tensor per batch, e.g. 1 on the answer tokens of the model's own answers), only the
weighted positions are, as a weighted mean.

Cost of `kl` (exact, no approximation): each round runs the current model once and caches every
layer's input stream; the model without candidate layer i is then the cached input of i pushed
through the layers after i only, so a round costs Σ_i (L−1−i) ≈ L²/2 layer passes plus one head
per candidate (instead of L full forwards, ≈ L² layer passes). After a removal, the streams
before the removed layer are reused. `cosine`/`angular` need one pass per round (from the
removed layer on).

`rescore=False` is the cheap approximation: one round of scores on the full model, and the
`remove` lowest layers go at once (no re-scoring after each removal). `DepthResult.cost` counts
layer and head passes and gives the measured wall time as a multiple of one forward through the
decoder layers (the first round's stream computation, timed in the same run).

Stability: each round also resamples the calibration batches with replacement (`resamples`
times, a generator seeded 0) and records how often each candidate has the lowest Σs/Σn — its
bootstrap win rate. The unit resampled is the calibration batch: one sample per batch for
answered sources; windows batched several to a batch give a coarser estimate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prunekit.calibration.engine import LayerCall, LayerwiseEngine, _first, _to
from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter

if TYPE_CHECKING:
    from prunekit.calibration.context import RunContext
    from prunekit.config.depth import DepthConfig

CRITERIA = ("kl", "cosine", "angular")
LOGPROB_CACHE_BYTES = 2 << 30  # cache the current model's log-probs per round below this size
RESAMPLES = 1000  # bootstrap resamples of the calibration batches per round


def _pick(h: torch.Tensor, last_token: bool) -> torch.Tensor:
    """Rows to score: every position (B·T × d) or the last position of each window (B × d)."""
    return h[:, -1].float() if last_token else h.reshape(-1, h.shape[-1]).float()


def _total(per_token: torch.Tensor, weight: torch.Tensor | None) -> tuple[float, float]:
    """Σ per-token score (weighted where weights are given) and the count (or Σ weights)."""
    if weight is None:
        return float(per_token.sum()), per_token.shape[0]
    weight = weight.reshape(-1).to(per_token)
    return float((weight * per_token).sum()), float(weight.sum())


def cosine_sum(
    h_in: torch.Tensor,
    h_out: torch.Tensor,
    last_token: bool = False,
    weight: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Σ (1 − cos(h_in, h_out)) over scored tokens, and how many tokens were scored."""
    a, b = _pick(h_in, last_token), _pick(h_out, last_token)
    return _total(1 - F.cosine_similarity(a, b, dim=-1), weight)


def angular_sum(
    h_in: torch.Tensor,
    h_out: torch.Tensor,
    last_token: bool = False,
    weight: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Σ arccos(cos(h_in, h_out)) / π over scored tokens, and how many tokens were scored."""
    a, b = _pick(h_in, last_token), _pick(h_out, last_token)
    cos = F.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0)
    return _total(torch.arccos(cos) / math.pi, weight)


def kl_sum(
    logp: torch.Tensor, logq: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[float, float]:
    """Σ_tokens KL(p ‖ q) from log-probabilities (… × V), and the number of tokens (or Σ
    weights: one weight per token)."""
    logp = logp.reshape(-1, logp.shape[-1]).float()
    logq = logq.reshape(-1, logq.shape[-1]).float()
    return _total((logp.exp() * (logp - logq)).sum(-1), weight)


@dataclass
class DepthResult:
    """Removal order (original layer indices) and every candidate's score in every round."""

    criterion: str
    last_token: bool
    removed: list[int]
    rounds: list[dict[int, float]] = field(default_factory=list)
    rescore: bool = True
    cost: dict = field(default_factory=dict)
    stability: list[dict[int, float]] | None = None  # per round: each candidate's win rate
    bootstrap: dict = field(default_factory=dict)  # resamples, batches, seed; or why none

    def to_dict(self) -> dict:
        out = {
            "criterion": self.criterion,
            "last_token": self.last_token,
            "rescore": self.rescore,
            "removed": self.removed,
            "rounds": [{str(k): v for k, v in r.items()} for r in self.rounds],
            "cost": self.cost,
        }
        if self.bootstrap:
            rounds = self.stability and [{str(k): v for k, v in r.items()} for r in self.stability]
            out["stability"] = {**self.bootstrap, "rounds": rounds}
        return out


def bootstrap_wins(
    sums: torch.Tensor, counts: torch.Tensor, resamples: int = RESAMPLES, seed: int = 0
) -> torch.Tensor:
    """Per column (candidate), the fraction of `resamples` resamples of the rows (batches, with
    replacement) in which its Σ sums / Σ counts is lowest; ties go to the first column."""
    batches, candidates = sums.shape
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, batches, (resamples, batches), generator=g)
    times = torch.zeros(resamples, batches, dtype=torch.float64)
    times.scatter_add_(1, draws, torch.ones_like(times))  # R × batches: how often each is drawn
    scores = (times @ sums.double()) / (times @ counts.double())
    return torch.bincount(scores.argmin(1), minlength=candidates).double() / resamples


def round_stability(
    per_batch: dict[int, list[tuple[float, float]]], resamples: int = RESAMPLES, seed: int = 0
) -> dict[int, float]:
    """Each candidate layer's bootstrap win rate from its per-batch (s, n); ties: lower index."""
    layers = sorted(per_batch)
    sums = torch.tensor([[s for s, _ in per_batch[i]] for i in layers], dtype=torch.float64)
    counts = torch.tensor([[n for _, n in per_batch[i]] for i in layers], dtype=torch.float64)
    wins = bootstrap_wins(sums.T, counts.T, resamples, seed)
    return dict(zip(layers, wins.tolist()))


def ranking_agreement(exact: DepthResult, approx: DepthResult) -> dict:
    """How far an approximate removal order agrees with the exact one."""
    k = min(len(exact.removed), len(approx.removed))
    a, b = exact.removed[:k], approx.removed[:k]
    return {
        "removed_exact": a,
        "removed_approx": b,
        "same_set": sorted(a) == sorted(b),
        "same_order": a == b,
        "set_overlap": len(set(a) & set(b)) / k if k else 1.0,
    }


def check_remove(remove: int, num_layers: int) -> None:
    if not isinstance(remove, int) or isinstance(remove, bool) or remove < 1:
        raise PrunekitError(f"depth remove must be a whole number ≥ 1, got {remove!r}")
    if remove >= num_layers:
        raise PrunekitError(
            f"cannot remove {remove} of {num_layers} layers (at least one must stay); "
            f"choose depth remove ≤ {num_layers - 1}"
        )


def check_layers(drop: list[int], num_layers: int) -> None:
    """Given layers to remove: indices of this model, at least one layer left."""
    bad = [i for i in drop if not 0 <= i < num_layers]
    if bad:
        raise PrunekitError(
            f"depth layers {bad} do not exist: the model has layers 0–{num_layers - 1} here; "
            "choose indices in that range"
        )
    check_remove(len(set(drop)), num_layers)


class _Stack:
    """Runs a subset of the decoder's layers over the captured calibration stream."""

    def __init__(self, model: nn.Module, adapter: DecoderAdapter, batches, device) -> None:
        self.model, self.adapter, self.device = model, adapter, torch.device(device)
        engine = LayerwiseEngine(model, adapter, batches, self.device, progress=False)
        self.h0, calls = engine.capture()
        self.calls = [
            [LayerCall(_to(c.args, self.device), _to(c.kwargs, self.device)) for c in per]
            for per in calls
        ]
        self.layers = adapter.layers(model)
        self.layer_passes = 0  # one = one decoder layer over the whole calibration stream
        self.head_rows = 0  # hidden rows through the final norm + output head

    def cost(self, num_layers: int, total: float, forward_s: float | None) -> dict:
        """Layer and head passes so far, and `total` seconds as a multiple of one forward."""
        return {
            "layer_passes": self.layer_passes,
            "forwards_by_layer_passes": self.layer_passes / num_layers,
            "head_rows": self.head_rows,
            "seconds": total,
            "one_forward_s": forward_s,
            "forwards_by_time": total / forward_s if forward_s else None,
        }

    @torch.no_grad()
    def run(self, idx: int, stream: list[torch.Tensor]) -> list[torch.Tensor]:
        layer = self.layers[idx]
        self.layer_passes += 1
        return [_first(layer(h, *c.args, **c.kwargs)) for h, c in zip(stream, self.calls[idx])]

    @torch.no_grad()
    def logprobs(
        self, hidden: torch.Tensor, last_token: bool, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Log-probabilities at every position, the last, or only at flat positions `rows`."""
        h = hidden[:, -1:] if last_token else hidden
        if rows is not None:
            h = h.reshape(-1, h.shape[-1])[rows][None]
        self.head_rows += h.shape[0] * h.shape[1]
        return torch.log_softmax(self.adapter.logits(self.model, h).float(), dim=-1)


class KlHead:
    """KL(p_reference ‖ q) per calibration batch, p from the reference model's final hidden states
    (log-probs cached below LOGPROB_CACHE_BYTES), q from a candidate's final hidden states."""

    def __init__(
        self,
        stack: _Stack,
        final: list[torch.Tensor],
        last_token: bool,
        weights: list[torch.Tensor] | None = None,
    ) -> None:
        self.stack, self.final, self.last_token = stack, final, last_token
        # with weights, only positions of weight > 0 go through the head (flat indices, per batch)
        self.rows = (
            None
            if weights is None
            else [torch.nonzero(w.reshape(-1) > 0).flatten() for w in weights]
        )
        self.picked = (
            None if self.rows is None else [w.reshape(-1)[r] for w, r in zip(weights, self.rows)]
        )
        vocab = stack.adapter.lm_head(stack.model).weight.shape[0]
        if self.rows is not None:
            tokens = sum(r.numel() for r in self.rows)
        else:
            tokens = sum(h.shape[0] * (1 if last_token else h.shape[1]) for h in final)
        self.cached = (
            [self._logprobs(b, h) for b, h in enumerate(final)]
            if tokens * vocab * 4 <= LOGPROB_CACHE_BYTES
            else None
        )

    def _logprobs(self, b: int, h: torch.Tensor) -> torch.Tensor:
        return self.stack.logprobs(h, self.last_token, None if self.rows is None else self.rows[b])

    def sums(self, hidden: list[torch.Tensor]) -> list[tuple[float, float]]:
        """Per batch, (Σ KL, count) of the candidate whose final hidden states are `hidden`."""
        return [
            kl_sum(
                self.cached[b] if self.cached is not None else self._logprobs(b, self.final[b]),
                self._logprobs(b, hb),
                None if self.picked is None else self.picked[b],
            )
            for b, hb in enumerate(hidden)
        ]


@torch.no_grad()
def greedy_depth(
    ctx: RunContext, options: DepthConfig, rescore: bool = True, resamples: int = RESAMPLES
) -> DepthResult:
    """Choose `options.remove` layers one at a time by `options.criterion` on the context's
    batches (pure scoring: the model is not edited).

    `rescore=False`: score once and remove the `remove` lowest (one round instead of `remove`).
    The context's `weights`: per-position weights, one tensor shaped like each batch (scores
    become weighted means over the positions of weight > 0).
    `resamples`: bootstrap resamples of the batches per round for `DepthResult.stability` (each
    candidate's win rate; the batch is the unit resampled); needs ≥ 2 batches.
    """
    batches, weights, progress = ctx.batches, ctx.weights, ctx.progress
    remove, criterion, last_token = options.remove, options.criterion, options.last_token
    if weights is not None:
        _check_weights(weights, batches, last_token)
    num_layers = len(ctx.adapter.layers(ctx.model))
    check_remove(remove, num_layers)
    with ctx.placed() as device:
        t0 = time.perf_counter()
        stack = _Stack(ctx.model, ctx.adapter, batches, device)
        active = list(range(num_layers))
        streams: list[list[torch.Tensor]] = [
            stack.h0
        ]  # streams[p] = input of active[p]; last = final
        result = DepthResult(criterion, last_token, [], rescore=rescore)
        if len(batches) >= 2 and resamples >= 1:
            result.stability = []
            result.bootstrap = {"resamples": resamples, "batches": len(batches), "seed": 0}
        else:  # no win rates claimed: one batch resampled is always itself
            why = "resamples=0" if resamples < 1 else "1 calibration batch: a bootstrap needs ≥ 2"
            result.bootstrap = {"batches": len(batches), "reason": why}
        forward_s = None
        rounds = remove if rescore else 1
        bar = tqdm(range(rounds), desc=f"depth ({criterion})", unit="round", disable=not progress)
        for _ in bar:
            t_fwd = time.perf_counter()
            while len(streams) < len(active) + 1:  # (re)compute the streams after the last removal
                streams.append(stack.run(active[len(streams) - 1], streams[-1]))
            if forward_s is None:  # the first round: one pass through every layer
                forward_s = time.perf_counter() - t_fwd
            per_batch = _score_round(
                stack, active, streams, criterion, last_token, progress, weights
            )
            scores = {idx: _mean(per_batch[idx]) for idx in active}
            result.rounds.append(scores)
            if result.stability is not None:
                result.stability.append(round_stability(per_batch, resamples))
            if rescore:
                pos = min(range(len(active)), key=lambda p: (scores[active[p]], active[p]))
                result.removed.append(active.pop(pos))
                del streams[pos + 1 :]
            else:
                result.removed = sorted(active, key=lambda i: (scores[i], i))[:remove]
            best = min(scores, key=lambda i: (scores[i], i))
            wins = {} if result.stability is None else {"wins": f"{result.stability[-1][best]:.0%}"}
            bar.set_postfix(removed=result.removed[-1], **wins)
        result.cost = stack.cost(num_layers, time.perf_counter() - t0, forward_s)
        return result


def _check_weights(weights: list[torch.Tensor], batches: list[torch.Tensor], last_token: bool):
    if last_token:
        raise PrunekitError("depth scoring takes weights or last_token, not both; choose one")
    if len(weights) != len(batches) or any(
        tuple(w.shape) != tuple(b.shape[:2]) for w, b in zip(weights, batches)
    ):
        raise PrunekitError("depth weights need one tensor shaped like each calibration batch")
    if not all(float(w.sum()) > 0 for w in weights):
        raise PrunekitError("every calibration batch needs a position of weight > 0 to score")


def _mean(per_batch: list[tuple[float, float]]) -> float:
    """A candidate's score: Σ s / Σ n, summed in batch order."""
    total = count = 0
    for s, n in per_batch:
        total, count = total + s, count + n
    return total / count


def _score_round(
    stack: _Stack,
    active,
    streams,
    criterion: str,
    last_token: bool,
    progress: bool,
    weights: list[torch.Tensor] | None = None,
) -> dict[int, list[tuple[float, float]]]:
    """Per active layer, the (Σ score, count) each calibration batch gives without it."""
    if criterion in ("cosine", "angular"):
        fn = cosine_sum if criterion == "cosine" else angular_sum
        return {
            idx: [
                fn(x, y, last_token, None if weights is None else weights[b])
                for b, (x, y) in enumerate(zip(streams[p], streams[p + 1]))
            ]
            for p, idx in enumerate(active)
        }
    head = KlHead(stack, streams[-1], last_token, weights)
    per_batch = {}
    for p in tqdm(range(len(active)), desc="  kl candidates", leave=False, disable=not progress):
        h = streams[p]  # the model without active[p]: its input, through the layers after it
        for idx in active[p + 1 :]:
            h = stack.run(idx, h)
        per_batch[active[p]] = head.sums(h)
    return per_batch


def remove_layers(model: nn.Module, adapter: DecoderAdapter, drop: list[int]) -> None:
    """Delete decoder layers `drop` in place and fix everything that indexes layers.

    Renumbers each attention module's `layer_idx` (the KV cache is indexed by it), filters
    every per-layer list in the config (e.g. `layer_types`) and updates `num_hidden_layers`.
    """
    layers = adapter.layers(model)
    num = len(layers)
    drop_set = set(drop)
    if not drop_set or min(drop_set) < 0 or max(drop_set) >= num:
        raise PrunekitError(f"layer indices {sorted(drop_set)} are out of range for {num} layers")
    check_remove(len(drop_set), num)
    kept_old = [i for i in range(num) if i not in drop_set]
    adapter.decoder(model).layers = nn.ModuleList([layers[i] for i in kept_old])
    for new_idx, layer in enumerate(adapter.layers(model)):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    cfg = model.config
    for key, value in list(vars(cfg).items()):
        if "layer" in key and isinstance(value, list | tuple) and len(value) == num:
            setattr(cfg, key, type(value)(value[i] for i in kept_old))
    if isinstance(getattr(cfg, "max_window_layers", None), int):
        cfg.max_window_layers = sum(1 for i in kept_old if i < cfg.max_window_layers)
    cfg.num_hidden_layers = len(kept_old)


def plot_depth_scores(result: DepthResult, path, title: str = "") -> None:
    """One line per round: each remaining layer's score; the removed layer is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, (scores, removed) in enumerate(zip(result.rounds, result.removed)):
        xs = sorted(scores)
        line = ax.plot(
            xs, [scores[x] for x in xs], marker=".", label=f"round {r + 1}: remove {removed}"
        )
        ax.plot([removed], [scores[removed]], marker="x", markersize=10, color=line[0].get_color())
    name = result.criterion + (" (last token)" if result.last_token else "")
    ax.set_xlabel("layer (original index)")
    ax.set_ylabel(f"{name} score (lower = removed first)")
    if result.criterion == "kl":
        ax.set_yscale("log")
    ax.set_title(title or f"Greedy depth pruning, {name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
