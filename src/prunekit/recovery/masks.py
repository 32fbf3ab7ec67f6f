"""Which weights a pruned student lost, kept exactly zero through training, and checked at the end."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.models.adapters import DecoderAdapter
from prunekit.recovery.distributed import local_like

NM_PATTERNS = ((2, 4), (4, 8))


Layers = int | Collection[int] | None  # every layer (None), one index, or a set of indices


def in_scope(index: int, only: Layers) -> bool:
    """Whether layer `index` is among the selected layers."""
    if only is None:
        return True
    return index == only if isinstance(only, int) else index in only


def decoder_linears(
    model: nn.Module, adapter: DecoderAdapter, only: Layers = None
) -> dict[str, nn.Linear]:
    """Every prunable Linear of the decoder (or of the layers `only`), keyed `layers.{i}.{name}`;
    a LoRA-wrapped Linear is given as its base layer."""
    return {
        f"layers.{i}.{name}": getattr(lin, "base", lin)
        for i, layer in enumerate(adapter.layers(model))
        if in_scope(i, only)
        for name, lin in adapter.linears(layer).items()
    }


def nm_valid(keep: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of `m` consecutive input columns of every row has at least `n` zeros."""
    rows, cols = keep.shape
    if cols % m:
        return False
    zeros = (~keep).reshape(rows, cols // m, m).sum(-1)
    return bool((zeros >= n).all())


def detect_pattern(keeps: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """The N:M pattern every mask satisfies (2:4 before 4:8), or None for unstructured masks."""
    if not keeps:
        return None
    for n, m in NM_PATTERNS:
        if all(nm_valid(k, n, m) for k in keeps.values()):
            return n, m
    return None


@dataclass
class SparsityMasks:
    """Keep-masks of the decoder Linears that hold pruned (exactly zero) weights."""

    keeps: dict[str, torch.Tensor]
    pattern: tuple[int, int] | None

    @classmethod
    def from_model(cls, model: nn.Module, adapter: DecoderAdapter) -> SparsityMasks:
        keeps = {}
        for name, lin in decoder_linears(model, adapter).items():
            keep = lin.weight.detach() != 0
            if not bool(keep.all()):
                keeps[name] = keep
        return cls(keeps, detect_pattern(keeps))

    @property
    def pruned(self) -> int:
        return sum(int((~k).sum()) for k in self.keeps.values())

    def weights(
        self, model: nn.Module, adapter: DecoderAdapter, only: Layers = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight parameter, keep mask) pairs of the masked layers (of layer `only`) in `model` now."""
        linears = decoder_linears(model, adapter, only)
        return [(linears[n].weight, k) for n, k in self.keeps.items() if n in linears]

    @torch.no_grad()
    def mask_grads(self, model: nn.Module, adapter: DecoderAdapter, only: Layers = None) -> None:
        """Zero the gradients of pruned weights (so optimiser state never moves them); under FSDP
        each process masks its own shard."""
        for w, keep in self.weights(model, adapter, only):
            if w.grad is not None:
                w.grad.mul_(local_like(keep, w.grad))

    @torch.no_grad()
    def apply(self, model: nn.Module, adapter: DecoderAdapter, only: Layers = None) -> None:
        """Set every pruned weight back to exactly zero."""
        for w, keep in self.weights(model, adapter, only):
            w.mul_(local_like(keep, w))

    @torch.no_grad()
    def verify(self, model: nn.Module, adapter: DecoderAdapter) -> dict:
        """What the report records: pruned weights still zero, and the N:M pattern still valid."""
        moved = sum(
            int(((w != 0) & ~keep.to(w.device)).sum()) for w, keep in self.weights(model, adapter)
        )
        out = {"pruned_weights": self.pruned, "pruned_weights_nonzero_after": moved}
        out["pruned_weights_still_zero"] = moved == 0
        if self.pattern:
            n, m = self.pattern
            live = {name: lin.weight != 0 for name, lin in decoder_linears(model, adapter).items()}
            out["pattern"] = f"{n}:{m}"
            out["pattern_valid"] = all(nm_valid(live[name], n, m) for name in self.keeps)
        return out
