"""NeuroAL (Cunegatti et al., 2024) as a top-up over any scorer: choose the block ramp λ, then the
row λ, by minimising the neuron-alignment objective on a small calibration subset.

Block step: s_b(λ) = s − λ + 2λ(b−1)/(B−1). Row step: a row's density grows with how much
activation its consumer's input channel lost (δ = a^dense − a^sparse of the consuming layer,
taken from the chosen block-step pass). Both are clipped and re-centred to keep the mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.allocation.alignment import (
    AlignmentResult,
    alignment_objective,
    ranked_prune,
    score_ranks,
    scorer_prune,
)
from prunekit.allocation.plan import AllocationPlan, LayerShape, block_sizes, make_plan
from prunekit.allocation.ramps import block_ramp, minmax, recentre
from prunekit.calibration.context import RunContext
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Pruner
from prunekit.models.adapters import DecoderAdapter

BLOCK_GRID = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.12, 0.15, 0.20, 0.25)
ROW_GRID = (0.0, *BLOCK_GRID)
# every third-ish point of the published grids: 8 searched candidates instead of 28, for when the
# search must cost about one pruning run (the objective is flat near its minimum; see benchmarks/)
COARSE_BLOCK_GRID = (0.02, 0.05, 0.08, 0.12, 0.20)
COARSE_ROW_GRID = (0.0, 0.04, 0.08, 0.15, 0.25)
GRIDS = {"full": (BLOCK_GRID, ROW_GRID), "coarse": (COARSE_BLOCK_GRID, COARSE_ROW_GRID)}
DEFAULT_SAMPLES = 8


def block_grid(sparsity: float, grid: tuple[float, ...] = BLOCK_GRID) -> tuple[float, ...]:
    """The block-step λ candidates (0.25 is dropped at s ≥ 0.8, where it would clip hard)."""
    return tuple(v for v in grid if not (sparsity >= 0.8 and v == 0.25))


def ramp_sparsity(
    num_blocks: int, sparsity: float, lam: float, sizes: torch.Tensor
) -> torch.Tensor:
    """The block ramp, clipped to [0.01, 0.99] and re-centred (size-weighted) to mean s."""
    return recentre(block_ramp(num_blocks, sparsity, lam), sizes, sparsity)


def row_sparsity(delta: torch.Tensor, layer_sparsity: float, lam: float) -> torch.Tensor:
    """Density (1−s_ℓ) + 2λ·minmax(δ_r) − mean, as sparsity, clipped and re-centred to mean s_ℓ."""
    raw = -2 * lam * minmax(delta)
    return recentre(raw, torch.ones_like(raw), layer_sparsity)


def row_plan(
    shapes: dict[str, LayerShape],
    blocks: torch.Tensor,
    deltas: dict[str, torch.Tensor],
    lam: float,
    rows_for: RowsFn,
    row_wise: bool = True,
) -> AllocationPlan:
    """Per-row sparsities from the consumer-layer δ (last block and MLP outputs keep the block value).

    `rows_for(name)` gives the consumer and the map of its δ onto `name`'s rows (`consumer_rows`).
    """
    last = max(s.block for s in shapes.values())
    rows = {}
    for key, s in shapes.items():
        consumer, to_rows = rows_for(s.name)
        if lam == 0 or consumer is None or s.block == last:
            continue
        delta = deltas.get(f"layers.{s.block}.{consumer}")
        folded = None if delta is None else to_rows(delta)
        if folded is not None and folded.numel() == s.d_out:
            rows[key] = row_sparsity(folded, float(blocks[s.block]), lam)
    return make_plan(shapes, blocks, rows, row_wise=row_wise)


RowsFn = Callable[[str], tuple[str | None, Callable[[torch.Tensor], torch.Tensor | None]]]


def consumer_rows(model: nn.Module, adapter: DecoderAdapter) -> RowsFn:
    """From the adapter's roles: whose input δ tells how much a Linear's output rows matter, and
    how that δ maps onto the rows (one to one, grouped-query folding, fused parts)."""

    def rows_for(name: str):
        return adapter.consumer(name), partial(adapter.rows_from_consumer, model.config, name)

    return rows_for


@dataclass
class SearchLog:
    """Every candidate's λ and objective (None-free: incomplete ones carry their lower bound)."""

    candidates: list[dict] = field(default_factory=list)
    chosen: float | None = None

    def add(self, lam: float, res: AlignmentResult, note: str = "") -> None:
        self.candidates.append(
            {
                "lambda": lam,
                "objective": res.objective,
                "complete": res.complete,
                "blocks_evaluated": res.blocks_done,
                **({"note": note} if note else {}),
            }
        )


def _order(grid: tuple[float, ...], start: float) -> list[float]:
    """Evaluate the likely winner first (tightest early bound), then the rest outwards."""
    return sorted(grid, key=lambda v: (abs(v - start), v))


@dataclass(frozen=True)
class SearchSettings:
    """How the search runs (defaults: the published grids, row step, bound, fast masks)."""

    row_step: bool = True
    row_wise: bool = True  # exact per-row counts everywhere (the pruner's `per_row_counts`)
    block_lambdas: tuple[float, ...] | None = None  # None: `block_grid(sparsity)`
    row_lambdas: tuple[float, ...] = ROW_GRID
    bound: bool = True
    fast_masks: bool = True
    # "stream": a^dense from the dense block on each candidate's own (masked) stream, as published
    # here so far (two passes per block per candidate); "cached": from the dense model's own
    # stream, taken once in the scoring pass (one masked pass per block per candidate; needs
    # fast_masks). The objective, and so possibly the chosen λ, differ.
    dense_reference: str = "stream"


DENSE_REFERENCES = ("stream", "cached")


def neuroal_search(
    run: RunContext,
    pruner: Pruner,
    pattern: Pattern,
    shapes: dict[str, LayerShape],
    sparsity: float,
    settings: SearchSettings = SearchSettings(),
    weights: list[torch.Tensor] | None = None,
) -> tuple[AllocationPlan, dict]:
    """Block λ search, then (if `row_step`) row λ search; return the chosen plan and the log.

    `run.batches` is the small search subset, of any lengths (each batch one length: they run
    one by one and pool their statistics); `weights` (one per batch, its shape) weight the
    alignment profiles per token (`alignment` module docstring), None: every token alike.
    `bound` stops a candidate as soon as its partial objective reaches the best complete one
    (exact: every term is ≥ 0). `fast_masks` scores every Linear once on the dense stream of the
    subset and masks candidates from those ranks; off, each candidate re-scores on its own
    (masked) stream, as the scorer would in a real prune.
    """
    t0 = time.perf_counter()
    opts, quiet = settings, run.quiet()
    num_blocks = 1 + max(s.block for s in shapes.values())
    sizes = block_sizes(shapes)
    rows_for = consumer_rows(run.model, run.adapter)
    grid = opts.block_lambdas or block_grid(sparsity)
    row_step, row_wise, row_lambdas = opts.row_step, opts.row_wise, opts.row_lambdas

    searching = len(grid) > 1 or row_step  # a single given λ without row step needs no pass
    dense_norms: dict[str, torch.Tensor] | None = None
    if searching and opts.fast_masks and not pattern.is_nm and not pruner.updates_weights:
        dense_norms = {} if opts.dense_reference == "cached" else None
        ranks = score_ranks(quiet, pruner, dense_norms, weights)
        needs: frozenset[str] = frozenset()
    else:
        ranks, needs = None, pruner.needs

    def evaluate(plan: AllocationPlan, best: float, desc: str) -> AlignmentResult:
        if ranks is not None:
            prune = ranked_prune(ranks, plan.target)
        else:
            prune = scorer_prune(pruner, pattern, plan.target)
        bound = best if opts.bound else math.inf
        return alignment_objective(quiet, prune, needs, bound, desc, dense_norms, weights)

    block_log, best, best_res = SearchLog(), math.inf, None
    if not searching:
        block_log.chosen = grid[0]
        grid = ()
    bar = tqdm(
        total=len(grid) + (len(row_lambdas) if row_step else 0),
        desc="NeuroAL search",
        unit="λ",
        disable=not run.progress,
    )
    for lam in _order(grid, 0.08):
        plan = make_plan(shapes, ramp_sparsity(num_blocks, sparsity, lam, sizes), row_wise=row_wise)
        res = evaluate(plan, best, f"block λ={lam}")
        block_log.add(lam, res)
        if res.complete and res.objective < best:
            best, best_res, block_log.chosen = res.objective, res, lam
        bar.update()
    blocks = ramp_sparsity(num_blocks, sparsity, block_log.chosen, sizes)
    plan = make_plan(shapes, blocks, row_wise=row_wise)
    out = {
        "search_windows": sum(b.shape[0] for b in run.batches),
        "search_tokens": sum(b.numel() for b in run.batches),
        **({} if weights is None else {"search_scored_tokens": int(sum(w.sum() for w in weights))}),
        "bounded": opts.bound,
        "fast_masks": ranks is not None,
        "dense_reference": "cached" if dense_norms is not None else "stream",
        "block_step": {"chosen_lambda": block_log.chosen, "candidates": _sorted(block_log)},
    }

    if row_step:
        row_log = SearchLog(chosen=0.0)
        for lam in row_lambdas:
            if lam == 0:  # the block step's winner: already evaluated
                row_log.add(0.0, best_res, "block-step result")
                bar.update()
                continue
            candidate = row_plan(shapes, blocks, best_res.deltas, lam, rows_for, row_wise)
            res = evaluate(candidate, best, f"row λ={lam}")
            row_log.add(lam, res)
            if res.complete and res.objective < best:
                best, plan, row_log.chosen = res.objective, candidate, lam
            bar.update()
        out["row_step"] = {"chosen_lambda": row_log.chosen, "candidates": _sorted(row_log)}
    bar.close()
    out["objective"] = best if math.isfinite(best) else None  # None: λ given, nothing searched
    out["search_s"] = time.perf_counter() - t0
    return plan, out


def _sorted(log: SearchLog) -> list[dict]:
    return sorted(log.candidates, key=lambda c: c["lambda"])
