"""SAAP: structure-aware adaptive pruning of attention head groups and MLP channels (DESIGN §3.5).

One gradient pass scores every group (`importance`), per-block removal counts come from
`ratios` under a parameter budget, the lowest-scored groups of each block go, and the modules'
head counts and widths follow their new shapes (`groups.sync_configs`).

Budgets: `heads` / `ffn` are the fractions of that kind's parameters removed over the whole
model (a head group's parameters are its q/k/v rows and output columns; a channel's are its MLP
rows and column). `target` is instead a fraction of all non-embedding parameters; it is split by
one rule: both kinds lose the same fraction f of their parameters, f = target · non-embedding /
(head-group + channel parameters). Channels go in whole `multiple`s (1 by default: per-block
widths need no kernel-friendly size; e.g. 64 keeps every width a multiple of 64 when the dense
width is one); at least one kv group and `min_channels` channels stay in every block.

`refit`: after the groups to keep are chosen, one engine pass over the calibration batches
re-solves the kept columns of each pruned block's o_proj and down_proj (`structural.refit`):
in block i (on the stream as pruned and refit before it) o_proj's XᵀX is taken on the dense
block, its head groups go and o_proj is refit; then down_proj's XᵀX is taken on the block with
its heads already cut (what the MLP will see), its channels go and down_proj is refit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from prunekit.calibration.engine import BlockContext
from prunekit.calibration.stats import HESSIAN
from prunekit.config.structured import SaapConfig
from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter
from prunekit.structural.groups import ChannelGroups, GroupKind, HeadGroups, sync_configs
from prunekit.structural.importance import (
    REGISTRY,
    GradStats,
    accumulate_gradients,
    kind_scores,
)
from prunekit.structural.ratios import Blocks, allocate, layer_weights
from prunekit.structural.refit import DAMP, consumer_part, keep_and_refit
from prunekit.structural.width import select_channels

if TYPE_CHECKING:
    from prunekit.calibration.context import RunContext

__all__ = ["SaapConfig", "apply_scores", "check_budget", "prune_structured", "score_groups"]


def non_embedding(model: nn.Module, adapter: DecoderAdapter) -> int:
    """Parameters outside the embedding and output head (tied ones counted once)."""
    from prunekit.recovery.report import param_summary

    return param_summary(model, adapter)["non_embedding"]


def _params(model: nn.Module, adapter: DecoderAdapter) -> dict[str, int]:
    from prunekit.reports.report import param_counts

    return {"total": param_counts(model)["total"], "non_embedding": non_embedding(model, adapter)}


def _kinds(adapter: DecoderAdapter) -> dict[str, GroupKind]:
    return {"heads": HeadGroups(adapter), "ffn": ChannelGroups(adapter)}


def plan_blocks(model: nn.Module, adapter: DecoderAdapter, cfg: SaapConfig) -> dict[str, Blocks]:
    """Each kind's groups, costs and per-block limits (channels in units of `multiple`)."""
    layers = adapter.layers(model)
    out = {}
    for name, kind in _kinds(adapter).items():
        counts = [kind.count(layer) for layer in layers]
        costs = [kind.cost(layer) for layer in layers]
        step = cfg.multiple if name == "ffn" else 1
        low = math.ceil(cfg.min_channels / step) * step if name == "ffn" else 1
        out[name] = Blocks.build(counts, costs, cfg.max_ratio, low, step)
    return out


def budgets(
    model: nn.Module, adapter: DecoderAdapter, cfg: SaapConfig, blocks: dict[str, Blocks]
) -> dict[str, float]:
    """Parameters each kind must lose."""
    if cfg.target is not None:
        prunable = sum(b.total for b in blocks.values())
        f = cfg.target * non_embedding(model, adapter) / prunable
        if f >= 1:
            raise PrunekitError(
                f"structured target {cfg.target} of the non-embedding parameters is more than "
                f"the attention and MLP groups hold ({prunable:,}); lower it"
            )
        fractions = {"heads": f, "ffn": f}
    else:
        fractions = {"heads": cfg.heads or 0.0, "ffn": cfg.ffn or 0.0}
    return {k: fractions[k] * blocks[k].total for k in blocks}


def check_budget(model: nn.Module, adapter: DecoderAdapter, cfg: SaapConfig) -> None:
    """Fail before any scoring when the budget cannot fit the per-block limits."""
    blocks = plan_blocks(model, adapter, cfg)
    # adaptive weights are positive wherever uniform ones are, so they reach the same caps
    method = "uniform" if cfg.ratios == "adaptive" else cfg.ratios
    n = len(adapter.layers(model))
    weights = layer_weights(method, [torch.ones(1)] * n, 0.0, cfg.skip_first, cfg.skip_last)
    for name, target in budgets(model, adapter, cfg, blocks).items():
        _allocate(blocks[name], weights, target, None, name, cfg)


def _allocate(blocks: Blocks, weights, target, scores, name: str, cfg: SaapConfig) -> list[int]:
    given = f"target {cfg.target}, its {name} share" if cfg.target is not None else name
    what = f"structured {given} (ratios {cfg.ratios})"
    return allocate(blocks, weights, target, scores, what)


@dataclass
class GroupScores:
    """Every kind's per-block group scores from one gradient pass, with the importance's record."""

    kinds: dict[str, tuple[list[torch.Tensor], dict, float]]  # name → (scores, info, offset)


def score_groups(ctx: RunContext, cfg: SaapConfig, stats: GradStats | None = None) -> GroupScores:
    """Score the groups of every kind the budget touches on the context's batches (`stats`: a
    gradient pass to reuse, e.g. one pass shared by several importances in a benchmark; it must
    be this model's)."""
    model, adapter = ctx.model, ctx.adapter
    layers = adapter.layers(model)
    targets = budgets(model, adapter, cfg, plan_blocks(model, adapter, cfg))
    importance = REGISTRY[cfg.importance]()
    with ctx.placed():
        if stats is None:
            stats = accumulate_gradients(ctx, importance.needs_fisher)
        kinds = {
            name: kind_scores(layers, kind, importance, stats)
            for name, kind in _kinds(adapter).items()
            if targets[name] > 0
        }
    return GroupScores(kinds)


def apply_scores(ctx: RunContext, cfg: SaapConfig, scored: GroupScores) -> dict:
    """Allocate per-block removals from the scores and remove the lowest groups in place (the
    context's model must have the shapes it was scored with); return the report section.
    `cfg.refit` needs the context's batches, the calibration data for the refit pass."""
    model, adapter = ctx.model, ctx.adapter
    if cfg.refit and not ctx.batches:
        raise PrunekitError("structured refit needs the calibration batches")
    layers = adapter.layers(model)
    blocks = plan_blocks(model, adapter, cfg)
    targets = budgets(model, adapter, cfg, blocks)
    before = _params(model, adapter)
    kinds = _kinds(adapter)
    config = {f: getattr(cfg, f) for f in SaapConfig.model_fields}  # SAAP's own, not calibration
    section: dict = {"config": config, "kinds": {}, "params_before": before}
    keeps: dict[str, list[torch.Tensor | None]] = {}
    for name, (scores, info, offset) in scored.kinds.items():
        b = blocks[name]
        weights = layer_weights(cfg.ratios, scores, offset, cfg.skip_first, cfg.skip_last)
        removed = _allocate(b, weights, targets[name], scores, name, cfg)
        keeps[name] = [
            select_channels(s.float(), g - r) if r else None
            for s, r, g in zip(scores, removed, b.counts)
        ]
        done = sum(c * r for c, r in zip(b.costs, removed))
        section["kinds"][name] = {
            "groups_before": b.counts,
            "groups_after": [g - r for g, r in zip(b.counts, removed)],
            "ratio": [r / g for r, g in zip(removed, b.counts)],
            "weights": weights,
            "group_cost": b.costs,
            "step": b.step,
            "target_params": round(targets[name]),
            "removed_params": done,
            "importance": info,
            "score_offset": offset,
        }
    if cfg.refit:
        errors = keep_with_refit(ctx, keeps, cfg.refit_damp)
        section["refit"] = {"damp": cfg.refit_damp, **errors}
    else:
        for name, idxs in keeps.items():
            for layer, idx in zip(layers, idxs):
                if idx is not None:
                    kinds[name].keep(layer, idx)
        section["refit"] = None
    section["uniform"] = sync_configs(model, adapter)
    section["params_after"] = _params(model, adapter)
    return section


@torch.no_grad()
def keep_with_refit(
    ctx: RunContext, keeps: dict[str, list[torch.Tensor | None]], damp: float = DAMP
) -> dict[str, dict[str, list[float | None]]]:
    """Keep groups `keeps[kind][i]` (None: block i keeps all) block by block on the engine, each
    cut followed by the refit of its consumer (heads first, then channels, as the forward runs);
    return per kind the per-layer relative output errors before and after (None: untouched)."""
    model, adapter = ctx.model, ctx.adapter
    kinds = _kinds(adapter)
    n = len(adapter.layers(model))
    errors = {name: {"before": [None] * n, "after": [None] * n} for name in keeps}

    def block_fn(block: BlockContext) -> None:
        for name in ("heads", "ffn"):  # the order the block's forward reads them
            idx = keeps.get(name, [None] * n)[block.index]
            if idx is None:
                continue
            kind = kinds[name]
            consumer = consumer_part(kind, block.layer).name
            gram = block.collect([HESSIAN], [consumer])[consumer].xtx
            e = keep_and_refit(kind, block.layer, idx, gram, damp)
            sync_configs(model, adapter)  # the cut block's forward reads its head counts
            for key in ("before", "after"):
                errors[name][key][block.index] = e[key]

    ctx.engine("structured (refit)").run(block_fn)
    return errors


def prune_structured(ctx: RunContext, cfg: SaapConfig) -> dict:
    """Score, allocate and remove head groups and MLP channels in place on the context's
    calibration batches; return the report section."""
    check_budget(ctx.model, ctx.adapter, cfg)
    return apply_scores(ctx, cfg, score_groups(ctx, cfg))
