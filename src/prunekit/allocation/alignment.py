"""NeuroAL's neuron-alignment objective M(D): how far a masked block's input-norm profile drifts
from the dense one, measured block by block on a small calibration subset (forward passes only).

For every Linear ℓ: m_ℓ = ‖a^dense/Σa^dense − a^sparse/Σa^sparse‖₂ / d_in, with a the per-channel
input L2 norm, the dense block run on the current (masked) stream, and δ_ℓ = a^dense − a^sparse.

Sequences of different lengths (answered calibration) run as their own batches, never padded, and
a pools Σx² over every token of every batch. With per-token weights w (1 on the answer tokens of
an answered sequence, 0 on its prompt, 1 on corpus windows), the profiles compared are
a_j = √(Σ_t w_t x_tj²): the objective measures how a cut moves the activations on the code the
model writes, as depth scoring measures its KL there. The masks themselves (score ranks, or the
scorer's own statistics) stay unweighted over every position, as the real prune computes them, so
the search judges exactly the masks the prune will make. Without weights nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from prunekit.calibration.context import RunContext
from prunekit.calibration.engine import BlockContext, hooked_forward
from prunekit.calibration.stats import SQ_NORM, LinearStats
from prunekit.errors import PrunekitError
from prunekit.methods.masks import row_prune_counts, zero_masked_
from prunekit.methods.oneshot import TargetFn
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Pruner


def alignment_term(a_dense: torch.Tensor, a_sparse: torch.Tensor) -> float:
    """m = ‖a_d/Σa_d − a_s/Σa_s‖₂ / d_in (0 when the profiles are proportional)."""
    a_d, a_s = a_dense.double(), a_sparse.double()
    return float(torch.linalg.vector_norm(a_d / a_d.sum() - a_s / a_s.sum()) / a_d.numel())


def forward_with_norms(
    linears: dict[str, nn.Linear], forward: Callable[[], list[torch.Tensor]]
) -> tuple[dict[str, LinearStats], list[torch.Tensor]]:
    """Run `forward` once with hooks: each Linear's input Σx² (and the block's outputs, kept)."""
    return hooked_forward(linears, {SQ_NORM}, forward)


Weights = list[torch.Tensor] | None  # per batch, the batch's shape (N × T): one weight per token
Groups = tuple[tuple[str, ...], ...]


@contextmanager
def weighted_norms(
    linears: dict[str, nn.Linear], weights: list[torch.Tensor], groups: Groups = ()
) -> Iterator[dict[str, torch.Tensor]]:
    """Σ_t w_t x_t² per input channel of every Linear over the block forwards run inside; the
    dict it yields holds a = √(that sum) per Linear once the block exits.

    A Linear's k-th call reads batch k's weights. As in the engine, only the first Linear of each
    input group is hooked (the others read the same tensor), and its hook runs before any other,
    so a statistics pass that stops at its last hooked Linear still shows every input here.
    """
    shares: dict[str, list[str]] = {}  # hooked Linear -> the Linears that read its input
    for n in linears:
        group = next((g for g in groups if n in g), (n,))
        owner = next((o for o in shares if o in group), None)
        shares.setdefault(owner or n, []).append(n)
    hooked = list(shares)
    sums: dict[str, torch.Tensor] = {}
    calls = dict.fromkeys(hooked, 0)

    def once_per_batch() -> PrunekitError:
        return PrunekitError(
            f"weighted statistics: a Linear ran {sorted(set(calls.values()))} times for "
            f"{len(weights)} batches (each must run once per batch)"
        )

    def hook(name: str, inp: tuple) -> None:
        if calls[name] == len(weights):
            raise once_per_batch()
        x = inp[0].reshape(-1, inp[0].shape[-1]).float()
        w = weights[calls[name]].reshape(-1, 1).to(device=x.device, dtype=x.dtype)
        calls[name] += 1
        part = (x * x * w).sum(0)
        sums[name] = part if name not in sums else sums[name].add_(part)

    handles = [
        linears[n].register_forward_pre_hook(lambda _m, inp, n=n: hook(n, inp), prepend=True)
        for n in hooked
    ]
    out: dict[str, torch.Tensor] = {}
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
    if any(c != len(weights) for c in calls.values()):
        raise once_per_batch()
    for n, members in shares.items():
        for member in members:
            out[member] = sums[n].sqrt()


@contextmanager
def _maybe_weighted(
    linears: dict[str, nn.Linear], weights: Weights, groups: Groups
) -> Iterator[dict[str, torch.Tensor] | None]:
    """`weighted_norms` where there are weights; else nothing (the unweighted statistics)."""
    if weights is None:
        yield None
        return
    with weighted_norms(linears, weights, groups) as out:
        yield out


@dataclass
class BlockAlignment:
    terms: dict[str, float]
    deltas: dict[str, torch.Tensor]
    outputs: list[torch.Tensor]


@torch.no_grad()
def align_block(
    linears: dict[str, nn.Linear],
    collect: Callable[[frozenset[str]], dict[str, LinearStats]],
    forward: Callable[[], list[torch.Tensor]],
    prune: Callable[[str, torch.Tensor, LinearStats | None], None],
    needs: frozenset[str] = frozenset(),
    dense_norms: dict[str, torch.Tensor] | None = None,
    weights: Weights = None,
    groups: Groups = (),
) -> BlockAlignment:
    """Dense statistics, mask, masked forward, restore: the block ends dense, its masked output kept.

    Only this block's weights are cloned (never the model). `collect(kinds)` is the dense
    statistics pass (the engine's `ctx.collect`); `prune(name, weight, stats)` masks in place.
    `dense_norms` (a^dense per Linear, e.g. from the dense model's own stream) skips that pass;
    `prune` then gets no statistics. `weights` (per batch, per token; `groups`: the block's input
    groups): both profiles weighted (see the module docstring); `prune` still gets unweighted
    statistics.
    """
    dense, weighted_dense = None, None
    if dense_norms is None:
        with _maybe_weighted(linears, weights, groups) as weighted_dense:
            dense = collect(frozenset(needs) | {SQ_NORM})
    saved = {n: lin.weight.detach().clone() for n, lin in linears.items()}
    try:
        for n, lin in linears.items():
            prune(n, lin.weight.data, None if dense is None else dense[n])
        with _maybe_weighted(linears, weights, groups) as weighted_sparse:
            sparse, outputs = forward_with_norms(linears, forward)
    finally:
        for n, lin in linears.items():
            lin.weight.data.copy_(saved[n])
    terms, deltas = {}, {}
    for n in linears:
        if dense_norms is not None:
            a_d = dense_norms[n]
        else:
            a_d = dense[n].act_norm if weighted_dense is None else weighted_dense[n]
        a_s = sparse[n].act_norm if weighted_sparse is None else weighted_sparse[n]
        terms[n] = alignment_term(a_d, a_s)
        deltas[n] = (a_d.to(a_s.device) - a_s).double().cpu()
    return BlockAlignment(terms, deltas, outputs)


@dataclass
class AlignmentResult:
    """M(D) = Σ m_ℓ; `complete` is False when the pass stopped early (partial sum ≥ bound)."""

    objective: float
    complete: bool
    blocks_done: int
    terms: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)


# (block index, linear name, weight to mask in place, dense statistics of its input)
BlockPruneFn = Callable[[int, str, torch.Tensor, LinearStats], None]


def scorer_prune(pruner: Pruner, pattern: Pattern, target: TargetFn) -> BlockPruneFn:
    """Mask with the scorer itself, on statistics of the candidate's own stream (exact, slower)."""

    def prune(block: int, name: str, weight: torch.Tensor, stats: LinearStats) -> None:
        pruner.prune(weight, stats, target(block, name, weight), pattern)

    return prune


def row_ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank of every score within its row (0 = lowest; stable, as `row_mask` breaks ties)."""
    d_out, d_in = scores.shape
    order = torch.argsort(scores, dim=1, stable=True)
    ranks = torch.empty(d_out, d_in, dtype=torch.int16 if d_in < 2**15 else torch.int32)
    ranks.scatter_(1, order, torch.arange(d_in, dtype=ranks.dtype).expand(d_out, d_in))
    return ranks


@torch.no_grad()
def score_ranks(
    run: RunContext,
    pruner: Pruner,
    dense_norms: dict[str, torch.Tensor] | None = None,
    weights: Weights = None,
) -> dict[str, torch.Tensor]:
    """One dense pass: every Linear's per-row score ranks (int16), to mask any candidate cheaply.

    Sorting scores dominates a candidate pass otherwise (one sort per Linear per candidate);
    with the ranks, a mask at per-row counts k_r is just `ranks < k_r`. A `dense_norms` dict is
    filled, in the same pass, with every Linear's input norm a^dense on the dense stream
    (weighted by `weights` where given; the scores never are).
    """
    ranks: dict[str, torch.Tensor] = {}
    kinds = set(pruner.needs) | ({SQ_NORM} if dense_norms is not None else set())
    weights = weights if dense_norms is not None else None

    def block_fn(ctx: BlockContext) -> None:
        with _maybe_weighted(ctx.linears, weights, ctx.input_groups) as weighted:
            stats = ctx.collect(kinds, pass_on=True) if kinds else {}  # dense stream
        for n, lin in ctx.linears.items():
            scores = pruner.scores(lin.weight, stats.get(n))
            ranks[f"layers.{ctx.index}.{n}"] = row_ranks(scores).cpu()
            if dense_norms is not None:
                a = stats[n].act_norm if weighted is None else weighted[n]
                dense_norms[f"layers.{ctx.index}.{n}"] = a

    run.engine("search scores").run(block_fn)
    return ranks


def ranked_prune(ranks: dict[str, torch.Tensor], target: TargetFn) -> BlockPruneFn:
    """Mask the ⌊d_in·s_r⌋ lowest-ranked weights of every row (same mask as `row_mask`)."""

    def prune(block: int, name: str, weight: torch.Tensor, stats: LinearStats) -> None:
        r = ranks[f"layers.{block}.{name}"].to(weight.device)
        counts = row_prune_counts(weight.shape[1], target(block, name, weight), weight.shape[0])
        zero_masked_(weight, r < counts.to(weight.device)[:, None])

    return prune


@torch.no_grad()
def alignment_objective(
    run: RunContext,
    prune: BlockPruneFn,
    needs: frozenset[str] = frozenset(),
    bound: float = math.inf,
    desc: str = "alignment",
    dense_norms: dict[str, torch.Tensor] | None = None,
    weights: Weights = None,
) -> AlignmentResult:
    """M(D) for the allocation that `prune` applies, through the shared engine; model ends unchanged.

    Every m_ℓ ≥ 0, so once the running sum reaches `bound` (the best complete candidate so far)
    this candidate cannot win: the remaining blocks just pass the stream through uncomputed.
    `dense_norms` (keyed `layers.i.name`): a^dense cached from the dense model's own stream, so a
    candidate costs one masked forward per block instead of a dense one plus a masked one.
    `weights` (one tensor per batch of `run`, its shape): weighted profiles (module docstring).
    """
    result = AlignmentResult(0.0, True, 0)

    def block_fn(ctx: BlockContext) -> None:
        if not result.complete:
            ctx.outputs = ctx.inputs
            return

        def prune_here(name: str, weight: torch.Tensor, stats: LinearStats | None) -> None:
            prune(ctx.index, name, weight, stats)

        cached = None
        if dense_norms is not None:
            cached = {n: dense_norms[f"layers.{ctx.index}.{n}"] for n in ctx.linears}
        block = align_block(
            ctx.linears,
            ctx.collect,
            ctx.forward,
            prune_here,
            needs,
            cached,
            weights,
            ctx.input_groups,
        )
        ctx.outputs = block.outputs
        for n in ctx.linears:
            result.terms[f"layers.{ctx.index}.{n}"] = block.terms[n]
            result.deltas[f"layers.{ctx.index}.{n}"] = block.deltas[n]
        result.objective += sum(block.terms.values())
        result.blocks_done = ctx.index + 1
        if result.objective >= bound and ctx.index < ctx.num_blocks - 1:
            result.complete = False

    run.engine(desc).run(block_fn)
    return result
