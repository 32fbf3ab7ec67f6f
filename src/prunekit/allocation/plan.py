"""An allocation plan: the sparsity of every layer (and of every row) that the masking stage uses.

A plan is turned into the `TargetFn` of `prunekit.methods.oneshot.prune_model`; the scorer never
knows which allocation produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunekit.allocation.ramps import exact_row_targets
from prunekit.models.adapters import DecoderAdapter


@dataclass(frozen=True)
class LayerShape:
    block: int
    name: str
    d_out: int
    d_in: int

    @property
    def numel(self) -> int:
        return self.d_out * self.d_in


def layer_shapes(model: nn.Module, adapter: DecoderAdapter) -> dict[str, LayerShape]:
    """Every prunable Linear, keyed like the pruning records (`layers.{i}.{name}`)."""
    shapes = {}
    for i, layer in enumerate(adapter.layers(model)):
        for name, lin in adapter.linears(layer).items():
            shapes[f"layers.{i}.{name}"] = LayerShape(i, name, *lin.weight.shape)
    return shapes


def block_sizes(shapes: dict[str, LayerShape]) -> torch.Tensor:
    """Prunable weights per block (the weights of a size-weighted block mean)."""
    sizes = torch.zeros(1 + max(s.block for s in shapes.values()), dtype=torch.float64)
    for s in shapes.values():
        sizes[s.block] += s.numel
    return sizes


@dataclass
class AllocationPlan:
    """Layer sparsities, plus exact per-row sparsities when the pruner masks row by row."""

    shapes: dict[str, LayerShape]
    layer: dict[str, float]
    rows: dict[str, torch.Tensor] = field(default_factory=dict)

    def target(self, block: int, name: str, weight: torch.Tensor) -> float | torch.Tensor:
        """The `TargetFn` for `prune_model`."""
        key = f"layers.{block}.{name}"
        return self.rows[key] if key in self.rows else self.layer[key]

    def global_sparsity(self) -> float:
        total = sum(s.numel for s in self.shapes.values())
        return sum(self.layer[k] * s.numel for k, s in self.shapes.items()) / total

    def block_sparsity(self) -> list[float]:
        """Size-weighted mean sparsity of each block."""
        zeros = torch.zeros_like(block_sizes(self.shapes))
        for k, s in self.shapes.items():
            zeros[s.block] += self.layer[k] * s.numel
        return (zeros / block_sizes(self.shapes)).tolist()

    def row_histogram(self, bins: int = 50) -> dict:
        """Histogram of all row sparsities (rows of every layer), small enough for report.json."""
        values = [
            self.rows.get(k, torch.full((s.d_out,), self.layer[k])) for k, s in self.shapes.items()
        ]
        flat = torch.cat([v.double() for v in values])
        counts = torch.histc(flat, bins=bins, min=0.0, max=1.0)
        return {
            "edges": torch.linspace(0, 1, bins + 1).tolist(),
            "counts": [int(c) for c in counts],
            "min": float(flat.min()),
            "max": float(flat.max()),
            "std": float(flat.std()),
        }


def make_plan(
    shapes: dict[str, LayerShape],
    block_sparsity: Sequence[float] | torch.Tensor,
    row_sparsity: dict[str, torch.Tensor] | None = None,
    row_wise: bool = True,
) -> AllocationPlan:
    """Plan from per-block sparsities and optional per-row overrides.

    Pruners that declare `per_row_counts` (magnitude, Wanda) get exact integer row counts
    everywhere. Others (`row_wise=False`; SparseGPT chooses its mask jointly over the rows of a
    column tile) get the layer value as a float, except for the layers given per-row values,
    which get exact row counts.
    """
    row_sparsity = row_sparsity or {}
    layer, rows = {}, {}
    for key, s in shapes.items():
        s_layer = float(block_sparsity[s.block])
        r = row_sparsity.get(key)
        if r is None and not row_wise:
            layer[key] = s_layer
            continue
        r = torch.full((s.d_out,), s_layer, dtype=torch.float64) if r is None else r
        rows[key] = exact_row_targets(r, s.d_in)
        layer[key] = float(rows[key].mean())
    return AllocationPlan(shapes, layer, rows)
