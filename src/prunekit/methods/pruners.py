"""Pruner classes: each declares what it needs and how it behaves, and prunes one weight matrix in place.

Allocation, NeuroAL, sub-models, the CLI and the recipe schema ask these declarations (and the
`PRUNERS` registry), never a method's name. A pruner is its own options schema (a pydantic model:
its fields are the method's options, reachable as `--NAME-FIELD`, a recipe's `method_options`
and the API's `method_options`): adding a method = one class + one registry entry.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from prunekit.calibration.stats import HESSIAN, SQ_NORM, LinearStats
from prunekit.config import Options, Registry
from prunekit.methods.masks import nm_mask, row_mask, zero_masked_
from prunekit.methods.patterns import Pattern
from prunekit.methods.scores import magnitude_scores, wanda_scores
from prunekit.methods.sparsegpt import sparsegpt_prune_group


def mask_from_scores(
    scores: torch.Tensor, sparsity: float | torch.Tensor, pattern: Pattern
) -> torch.Tensor:
    """N:M groups for an N:M pattern, else the lowest scores per row at the (per-row) sparsity."""
    return nm_mask(scores, pattern.n, pattern.m) if pattern.is_nm else row_mask(scores, sparsity)


class Pruner(Options):
    """Decides which weights of a Linear layer to zero, given its input statistics; its fields
    are the method's options."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()  # statistics kinds (calibration.stats)
    # True: it also changes the weights it keeps, so a mask alone cannot reproduce its result
    updates_weights: ClassVar[bool] = False
    # True: every row gets exactly its own prune count; False: it chooses masks jointly over rows
    # (a layer-wide fraction), honouring per-row counts only where a plan gives them
    per_row_counts: ClassVar[bool] = True
    # the cheaper method NeuroAL searches with in its place (None: itself)
    search_stand_in: ClassVar[str | None] = None

    def scores(self, weight: torch.Tensor, stats: LinearStats | None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def prune(
        self,
        weight: torch.Tensor,
        stats: LinearStats | None,
        sparsity: float | torch.Tensor,
        pattern: Pattern,
    ) -> torch.Tensor:
        """Zero weights in place; return the mask (True = pruned)."""
        mask = mask_from_scores(self.scores(weight, stats), sparsity, pattern)
        zero_masked_(weight, mask)
        return mask

    def prune_group(
        self,
        weights: list[torch.Tensor],
        stats: LinearStats | None,
        sparsities: list[float | torch.Tensor],
        pattern: Pattern,
    ) -> list[torch.Tensor]:
        """Linears that read the same input (one `stats`): by default pruned one at a time."""
        return [self.prune(w, stats, s, pattern) for w, s in zip(weights, sparsities)]


class Magnitude(Pruner):
    name = "magnitude"

    def scores(self, weight: torch.Tensor, stats: LinearStats | None) -> torch.Tensor:
        return magnitude_scores(weight)


class Wanda(Pruner):
    name = "wanda"
    needs = frozenset({SQ_NORM})

    def scores(self, weight: torch.Tensor, stats: LinearStats | None) -> torch.Tensor:
        return wanda_scores(weight, stats.act_norm)


class SparseGPT(Pruner):
    name = "sparsegpt"
    needs = frozenset({HESSIAN})
    updates_weights = True
    per_row_counts = False
    # one SparseGPT update per layer per λ candidate costs ~28 full SparseGPT runs; Wanda masks
    # at the same targets are the cheap stand-in for the search
    search_stand_in = "wanda"
    prefix = "sparsegpt"

    blocksize: int = Field(
        128, ge=1, description="columns pruned and updated together (default 128)"
    )
    percdamp: float = Field(
        0.01,
        gt=0,
        description="Hessian damping, a fraction of its mean diagonal (default 0.01; raised "
        "tenfold until H is positive definite)",
    )

    @torch.no_grad()
    def prune(
        self,
        weight: torch.Tensor,
        stats: LinearStats | None,
        sparsity: float | torch.Tensor,
        pattern: Pattern,
    ) -> torch.Tensor:
        return self.prune_group([weight], stats, [sparsity], pattern)[0]

    @torch.no_grad()
    def prune_group(
        self,
        weights: list[torch.Tensor],
        stats: LinearStats | None,
        sparsities: list[float | torch.Tensor],
        pattern: Pattern,
    ) -> list[torch.Tensor]:
        """One H⁻¹ and one column loop for the group's stacked rows (q/k/v, gate/up)."""
        results = sparsegpt_prune_group(
            weights, stats.hessian, sparsities, pattern, self.blocksize, self.percdamp
        )
        for weight, (new, _) in zip(weights, results):
            weight.copy_(new)
        return [mask for _, mask in results]


PRUNERS: Registry[type[Pruner]] = Registry("method", (Magnitude, Wanda, SparseGPT))


def get_pruner(name: str, options: dict | None = None) -> Pruner:
    """The registered method `name` with `options` (a recipe's `method_options`; its defaults
    where not given)."""
    return PRUNERS.lookup(name).from_keys(options, f"method '{name}'")
