"""Sparsity ramps and re-centring: per-block / per-row targets whose size-weighted mean is fixed.

Every allocation goes through `recentre` after clipping, so the global sparsity stays the target,
and through `exact_row_targets`, so per-row rounding (⌊d_in·s⌋) cannot drift it either.
"""

from __future__ import annotations

import torch

LOW, HIGH = 0.01, 0.99  # no block, layer or row is pruned below 1% or above 99%


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise to [0, 1]; a constant vector maps to zeros."""
    x = x.double()
    span = x.max() - x.min()
    return torch.zeros_like(x) if span <= 0 else (x - x.min()) / span


def recentre(
    values: torch.Tensor, weights: torch.Tensor, target: float, lo: float = LOW, hi: float = HIGH
) -> torch.Tensor:
    """Shift all `values` by one constant and clip to [lo, hi] so the weighted mean is `target`.

    The shift is found by bisection (the clipped weighted mean is monotone in it), so order is
    kept (a monotone ramp stays monotone) and clipping cannot move the mean off the target.
    Bounds are widened to include the target, so the problem is always feasible.
    """
    lo, hi = min(lo, target), max(hi, target)
    v, w = values.double().flatten(), weights.double().flatten()
    total = w.sum()

    def mean(c: float) -> float:
        return float((w * (v + c).clamp(lo, hi)).sum() / total)

    a, b = lo - float(v.max()), hi - float(v.min())  # mean(a) = lo ≤ target ≤ hi = mean(b)
    for _ in range(200):
        c = 0.5 * (a + b)
        if mean(c) < target:
            a = c
        else:
            b = c
        if b - a < 1e-15:
            break
    return (v + 0.5 * (a + b)).clamp(lo, hi).view_as(values)


def block_ramp(num_blocks: int, sparsity: float, lam: float) -> torch.Tensor:
    """s_b = s − λ + 2λ·b/(B−1) for b = 0..B−1: deeper blocks sparser, mean s (before clipping)."""
    if num_blocks == 1:
        return torch.tensor([sparsity], dtype=torch.float64)
    b = torch.arange(num_blocks, dtype=torch.float64)
    return sparsity - lam + 2 * lam * b / (num_blocks - 1)


def exact_row_targets(row_sparsity: torch.Tensor, d_in: int) -> torch.Tensor:
    """Per-row sparsities k_r/d_in with integer k_r and Σk_r = round(Σ s_r·d_in).

    `row_mask` prunes ⌊d_in·s_r⌋ per row, which loses up to one weight per row; distributing the
    remainders to the rows with the largest fractional parts keeps the layer's count exact.
    """
    x = row_sparsity.double().clamp(0, 1) * d_in
    k = torch.floor(x + 1e-9)
    extra = int(round(float(x.sum()))) - int(k.sum())
    if extra > 0:
        room = (k < d_in).double()
        order = torch.argsort((x - k) * room - (1 - room), descending=True, stable=True)
        k[order[:extra]] += 1
    elif extra < 0:
        order = torch.argsort(x - k + (k == 0).double(), stable=True)
        k[order[:-extra]] -= 1
    return k / d_in
