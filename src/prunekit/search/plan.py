"""A plan: one variant per layer (MLP channels and kv groups kept, or dropped) with the settings
that rebuild the level database, and `apply_plan`, the direct cut of a model to it (the same
cut the search's stitched candidates make; the export and `--plan` go through it)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from torch import nn

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter
from prunekit.search.levels import LevelDB, SearchSpace, Variant, shape_layer
from prunekit.structural.depth import remove_layers
from prunekit.structural.groups import sync_configs

FORMAT = "prunekit-search-plan/1"


def plan_dict(space: SearchSpace, genome, config: dict, model: dict, extra: dict) -> dict:
    """The plan of `genome`: per layer its variant, plus what rebuilds the database."""
    return {
        "format": FORMAT,
        "model": model,
        "config": config,
        "levels": list(genome),
        "layers": [asdict(v) for v in space.variants(genome)],
        "labels": space.labels(genome),
        "dropped": [i for i, v in enumerate(space.variants(genome)) if v.dropped],
        **extra,
    }


def read_plan(path: Path) -> dict:
    """A plan file, checked to be one; one line otherwise."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PrunekitError(f"--plan '{path}' cannot be read as JSON ({exc})") from None
    if not isinstance(plan, dict) or plan.get("format") != FORMAT:
        raise PrunekitError(f"--plan '{path}' is not a prunekit search plan ({FORMAT})")
    return plan


def plan_variants(plan: dict) -> list[Variant]:
    return [Variant(**layer) for layer in plan["layers"]]


def apply_plan(
    model: nn.Module, adapter: DecoderAdapter, db: LevelDB, variants: list[Variant], repair=None
) -> None:
    """Cut `model` in place: shape every kept layer from the database, optionally `repair(model,
    dropped)` (the depth-repair maps, fitted with every layer still present), remove the dropped
    layers, and make the configs agree with the new shapes."""
    layers = adapter.layers(model)
    if len(variants) != len(layers):
        raise PrunekitError(f"the plan has {len(variants)} layers, the model {len(layers)}")
    for i, (layer, v) in enumerate(zip(layers, variants)):
        if not v.dropped:
            shape_layer(layer, adapter, db, i, v)
    dropped = [i for i, v in enumerate(variants) if v.dropped]
    if dropped and repair is not None:
        repair(model, dropped)
    if dropped:
        remove_layers(model, adapter, dropped)
    sync_configs(model, adapter)
