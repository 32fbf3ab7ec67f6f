"""Choose and build an allocation (uniform / OWL / NeuroAL) as a plan for the masking stage.

`check_allocation` validates names and options (their schemas: `allocation.options`) before any
heavy work; `build_allocation` runs whatever statistics or search the allocation needs and returns
the plan and its report section.
"""

from __future__ import annotations

import time

import torch

from prunekit.allocation.neuroal import GRIDS, SearchSettings, block_grid, neuroal_search
from prunekit.allocation.options import ALLOCATIONS
from prunekit.allocation.owl import owl_block_sparsity, owl_outlier_ratios
from prunekit.allocation.plan import AllocationPlan, block_sizes, layer_shapes, make_plan
from prunekit.calibration.context import RunContext
from prunekit.config import OptionError, Surface
from prunekit.errors import PrunekitError
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Pruner, get_pruner


def check_allocation(name: str, options: dict | None, pattern: Pattern) -> dict:
    """Validate cheaply; return the options with defaults filled in (OptionError: a template
    whose field names each surface spells, e.g. --neuroal-samples / samples)."""
    opts = ALLOCATIONS.lookup(name).from_keys(options, f"allocation '{name}'")
    if name != "uniform" and pattern.is_nm:
        raise OptionError(
            f"allocation '{name}' varies sparsity per layer/row, but an N:M pattern fixes it at "
            f"{pattern.n}/{pattern.m} everywhere; use <allocation> uniform or an unstructured "
            "<sparsity>"
        )
    return opts.dump(Surface.RECIPE)


def build_allocation(
    name: str,
    options: dict,
    run: RunContext,
    pruner: Pruner,
    pattern: Pattern,
    sparsity: float,
    weights: list[torch.Tensor] | None = None,
) -> tuple[AllocationPlan, dict]:
    """The plan and the report section {name, options, block_sparsity, row_histogram, time_s, …}.

    `weights` (per batch of `run`, its shape; answered calibration's answer-token weights) weight
    NeuroAL's alignment objective; OWL's outlier ratios, like every score, read all tokens alike.
    """
    t0 = time.perf_counter()
    shapes = layer_shapes(run.model, run.adapter)
    sizes = block_sizes(shapes)
    row_wise = pruner.per_row_counts and not pattern.is_nm
    report: dict = {"name": name, "options": dict(options)}
    if name == "uniform":
        plan = make_plan(shapes, [sparsity] * len(sizes), row_wise=row_wise)
    elif name == "owl":
        ratios = owl_outlier_ratios(run, options["m"])
        blocks = owl_block_sparsity(torch.tensor(ratios), sparsity, options["lambda"], sizes)
        plan = make_plan(shapes, blocks, row_wise=row_wise)
        report["outlier_ratio"] = ratios
    else:
        target = (pattern, shapes, sparsity)
        plan, report["search"] = _neuroal(options, run, pruner, target, row_wise, weights)
    report["block_sparsity"] = plan.block_sparsity()
    report["planned_sparsity"] = plan.global_sparsity()
    report["row_histogram"] = plan.row_histogram()
    report["time_s"] = time.perf_counter() - t0
    return plan, report


def _neuroal(
    options: dict,
    run: RunContext,
    pruner: Pruner,
    target: tuple[Pattern, dict, float],
    row_wise: bool,
    weights: list[torch.Tensor] | None,
) -> tuple[AllocationPlan, dict]:
    pattern, shapes, sparsity = target
    method = options["search_method"]
    if method == "auto":
        method = pruner.search_stand_in or pruner.name
    searcher = pruner if method == pruner.name else get_pruner(method)
    sub, sub_weights = search_subset(run.batches, weights, int(options["samples"]))
    block_default, row_default = GRIDS[options["grid"]]
    block_lambdas = block_grid(sparsity, block_default)
    if options["block_lambdas"]:
        block_lambdas = tuple(options["block_lambdas"])
    if options["block_lambda"] is not None:  # a λ chosen before (e.g. by another scorer's search)
        block_lambdas = (float(options["block_lambda"]),)
    settings = SearchSettings(
        row_step=bool(options["row_step"]),
        row_wise=row_wise,
        block_lambdas=block_lambdas,
        row_lambdas=tuple(options["row_lambdas"] or row_default),
        bound=bool(options["bound"]),
        fast_masks=bool(options["fast_masks"]),
        dense_reference=str(options.get("dense_reference", "stream")),
    )
    plan, log = neuroal_search(
        run.with_batches(sub), searcher, pattern, shapes, sparsity, settings, sub_weights
    )
    log["search_method"] = method
    log["grid"] = options["grid"]
    return plan, log


Batches = list[torch.Tensor]


def search_subset(
    batches: Batches, weights: Batches | None, samples: int
) -> tuple[Batches, Batches | None]:
    """NeuroAL's search sequences (and their weights): `samples` of the calibration's.

    Sequences of one length (corpus windows): the first `samples`, in batches of the first
    batch's size, as always. Of several lengths (answered parts): `samples` sequences spread
    evenly over the whole set, so every part of a mixture has its share (the first ones would
    all be the mixture's first part), grouped by length (in order of first appearance) into
    batches of at most the largest batch size: no padding, so every statistic reads real tokens
    only. Weights that are 1 everywhere are dropped (the unweighted search, the same numbers).
    """
    if weights is not None and all(bool((w == 1).all()) for w in weights):
        weights = None
    if len({b.shape[1] for b in batches}) == 1:
        size = batches[0].shape[0]
        sub = list(torch.cat(batches)[:samples].split(size))
        sub_w = None if weights is None else list(torch.cat(weights)[:samples].split(size))
    else:
        sub, sub_w = _spread(batches, weights, samples)
    if sub_w is not None and not any(float(w.sum()) > 0 for w in sub_w):
        raise PrunekitError(
            "NeuroAL's search sequences have no weighted (answer) tokens; give more samples"
        )
    return sub, sub_w


def _spread(
    batches: Batches, weights: Batches | None, samples: int
) -> tuple[Batches, Batches | None]:
    """`samples` sequences evenly spaced over all, each length's in batches of its own."""
    rows = [row for b in batches for row in b]
    rows_w = None if weights is None else [row for w in weights for row in w]
    take = min(samples, len(rows))
    picks = [i * len(rows) // take for i in range(take)]  # distinct: len(rows) ≥ take
    size = max(b.shape[0] for b in batches)
    groups: dict[int, list[int]] = {}
    for i in picks:
        groups.setdefault(rows[i].shape[0], []).append(i)
    chunks = [g[at : at + size] for g in groups.values() for at in range(0, len(g), size)]
    sub = [torch.stack([rows[i] for i in c]) for c in chunks]
    if rows_w is None:
        return sub, None
    return sub, [torch.stack([rows_w[i] for i in c]) for c in chunks]
