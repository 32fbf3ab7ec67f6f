"""Contiguous-run depth selection and the depth pipeline (choose layers, repair, remove).

`best_run` scores every run [i, i + k) by the criteria of `greedy_depth`: `kl` is the mean
per-token KL(p_full ‖ p_without_run), `cosine`/`angular` compare the stream entering block i + k
without the run to the dense one (h_i vs h_{i+k}). With `repair`, each run is scored after its
fitted linear map (depth_repair): the choice is the run that repairs best, and runs starting at
layer 0 (no block before them) are not candidates.

Cost: one pass through every layer caches each layer's input stream (and, with repair, each
candidate block's MLP branch: up to L − k more streams of N × T × d); a `kl` candidate then costs
the layers after its run only, Σ_i (L − i − k) layer passes, plus one head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from prunekit.errors import PrunekitError
from prunekit.structural.depth import (
    KlHead,
    _check_weights,
    _mean,
    _Stack,
    angular_sum,
    check_layers,
    check_remove,
    cosine_sum,
    greedy_depth,
    remove_layers,
)
from prunekit.structural.depth_repair import (
    branch_scale,
    check_fit,
    fit_run,
    maximal_runs,
    repair_runs,
    repaired_stream,
    run_with_branch,
)

if TYPE_CHECKING:
    from prunekit.calibration.context import RunContext
    from prunekit.config.depth import DepthConfig

SELECTIONS = ("greedy", "run")
REPAIRS = ("none", "linear")


@dataclass
class RunResult:
    """The chosen run [start, stop) and every candidate's score (keyed by its first layer)."""

    criterion: str
    k: int
    repair: bool
    last_token: bool
    run: tuple[int, int]
    scores: dict[int, float] = field(default_factory=dict)
    fits: dict[int, dict] = field(default_factory=dict)  # with repair: each candidate's fit
    cost: dict = field(default_factory=dict)

    @property
    def removed(self) -> list[int]:
        return list(range(*self.run))

    def to_dict(self) -> dict:
        out = {
            "criterion": self.criterion,
            "k": self.k,
            "repair": self.repair,
            "last_token": self.last_token,
            "run": list(self.run),
            "removed": self.removed,
            "scores": {str(i): s for i, s in self.scores.items()},
            "cost": self.cost,
        }
        if self.fits:
            out["fits"] = {str(i): f for i, f in self.fits.items()}
        return out


@torch.no_grad()
def best_run(ctx: RunContext, options: DepthConfig) -> RunResult:
    """Score every run of `options.remove` consecutive layers by `options.criterion` on the
    context's batches and choose the lowest (the model is not edited).

    `options.repair == "linear"`: score each run after its fitted linear map (runs from layer 1
    on; `ridge`, `prior`); the context's weights and `last_token` as in `greedy_depth` (weights
    also weight the repair fits).
    """
    model, adapter, batches, weights = ctx.model, ctx.adapter, ctx.batches, ctx.weights
    k, criterion, last_token = options.remove, options.criterion, options.last_token
    repair, ridge, prior = options.repair == "linear", options.ridge, options.prior
    if weights is not None:
        _check_weights(weights, batches, last_token)
    num_layers = len(adapter.layers(model))
    check_remove(k, num_layers)
    first = 1 if repair else 0
    if first + k > num_layers:
        raise PrunekitError(
            f"no run of {k} layers after layer 0 in {num_layers} layers can be repaired; "
            f"choose depth remove ≤ {num_layers - 1 - first}"
        )
    if repair:
        check_fit(ridge, prior)
    scale = branch_scale(model, adapter) if repair else 1.0
    with ctx.placed() as device:
        t0 = time.perf_counter()
        stack = _Stack(model, adapter, batches, device)
        starts = range(first, num_layers - k + 1)
        need_branch = {i - 1 for i in starts} if repair else set()
        streams, branches = [stack.h0], {}
        for idx in range(num_layers):  # streams[j] = input of layer j; streams[-1] = final
            if idx in need_branch:
                out, branches[idx] = run_with_branch(stack, idx, streams[-1], scale)
            else:
                out = stack.run(idx, streams[-1])
            streams.append(out)
        forward_s = time.perf_counter() - t0
        head = KlHead(stack, streams[-1], last_token, weights) if criterion == "kl" else None
        result = RunResult(criterion, k, repair, last_token, (0, 0))
        for i in tqdm(starts, desc=f"depth runs ({k})", leave=False, disable=not ctx.progress):
            h = streams[i]  # without the run: what enters block i + k
            if repair:
                t, result.fits[i] = fit_run(
                    streams[i], branches[i - 1], streams[i + k], ridge, weights, prior
                )
                h = repaired_stream(streams[i], branches[i - 1], t)
            if head is None:
                fn = cosine_sum if criterion == "cosine" else angular_sum
                per_batch = [
                    fn(x, y, last_token, None if weights is None else weights[b])
                    for b, (x, y) in enumerate(zip(h, streams[i + k]))
                ]
            else:
                for idx in range(i + k, num_layers):
                    h = stack.run(idx, h)
                per_batch = head.sums(h)
            result.scores[i] = _mean(per_batch)
        best = min(result.scores, key=lambda i: (result.scores[i], i))
        result.run = (best, best + k)
        result.cost = stack.cost(num_layers, time.perf_counter() - t0, forward_s)
        return result


def prune_depth(ctx: RunContext, options: DepthConfig) -> dict:
    """Choose `options.remove` layers (greedy single removals or the best run), repair, remove;
    in place, on the context's calibration batches (and answer weights).

    With greedy selection and `repair="linear"`, a run that starts at layer 0 stays unrepaired
    (listed under `runs_unrepaired`); run selection never picks one.
    """
    model, adapter = ctx.model, ctx.adapter
    criterion, selection, repair = options.criterion, options.selection, options.repair
    num_layers = len(adapter.layers(model))
    check_remove(options.remove, num_layers)
    if repair == "linear":
        branch_scale(model, adapter)  # refuse bad input before any work
    t0 = time.perf_counter()
    if selection == "greedy":
        chosen = greedy_depth(ctx, options)
        order = list(chosen.removed)
    else:
        chosen = best_run(ctx, options)
        order = chosen.removed
    t_select = time.perf_counter() - t0
    drop = sorted(order)
    runs = maximal_runs(drop)
    repaired: list[dict] = []
    if repair == "linear" and any(a > 0 for a, _ in runs):
        repaired = repair_runs(ctx, drop, options.ridge, options.prior, skip_layer0=True)
    t_repair = time.perf_counter() - t0 - t_select
    remove_layers(model, adapter, drop)
    return {
        "selection": selection,
        "criterion": criterion,
        "repair": repair,
        "ridge": options.ridge if repair == "linear" else None,
        "prior": options.prior if repair == "linear" else None,
        "layers_before": num_layers,
        "layers_after": num_layers - len(drop),
        "removed": drop,
        "order": order,
        "runs": [list(r) for r in runs],
        "runs_repaired": repaired,
        "runs_unrepaired": [
            {"run": list(r), "reason": "starts at layer 0: no block before it to fold into"}
            for r in runs
            if repair == "linear" and r[0] == 0
        ],
        "selection_result": chosen.to_dict(),
        "seconds": {
            "select": t_select,
            "repair": t_repair,
            "total": time.perf_counter() - t0,
        },
    }


def remove_given(ctx: RunContext, options: DepthConfig) -> dict:
    """Remove the given `options.layers` (nothing scored); with `repair: linear`, first fold a
    map of each removed run into the block before it, fitted on the context's batches."""
    model, adapter, drop = ctx.model, ctx.adapter, options.layers
    before = len(adapter.layers(model))
    check_layers(drop, before)
    out: dict = {"removed": sorted(drop), "repair": options.repair}
    if options.repair == "linear":
        out["runs_repaired"] = repair_runs(
            ctx, drop, options.ridge, options.prior, skip_layer0=True
        )
    remove_layers(model, adapter, drop)
    return {"layers_before": before, "layers_after": len(adapter.layers(model)), **out}
