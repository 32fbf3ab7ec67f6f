"""SparseGPT (Frantar & Alistarh, 2023): prune columns block by block and update the remaining
weights with the Optimal Brain Surgeon correction, using the inverse layer Hessian."""

from __future__ import annotations

from itertools import accumulate
from math import inf

import torch

from prunekit.methods.masks import (
    lowest_k,
    lowest_per_row,
    row_prune_counts,
    zero_masked_,
)
from prunekit.methods.patterns import UNSTRUCTURED, Pattern


def _inverse_cholesky(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor of H⁻¹ after damping; damping grows until H is positive definite.

    At most three d_in² matrices live at once (the input, one working copy, one factor): for a
    4864-wide down projection each is 95 MB."""
    diag_mean = torch.diag(hessian).mean()
    damp = percdamp
    for _ in range(6):
        damped = hessian.clone()
        damped.diagonal().add_(damp * diag_mean)
        chol, info = torch.linalg.cholesky_ex(damped)
        del damped
        if info == 0:
            inv = torch.cholesky_inverse(chol)
            del chol
            return torch.linalg.cholesky(inv, upper=True)
        damp *= 10
    raise RuntimeError("Hessian is not positive definite even with heavy damping")


def tile_counts(counts: torch.Tensor, i1: int, i2: int, d_in: int) -> torch.Tensor:
    """Weights row r prunes in columns [i1, i2): ⌊k_r·i2/d_in⌋ − ⌊k_r·i1/d_in⌋.

    The tiles of a row add up to exactly k_r (the sum telescopes), spread evenly over the row.
    """
    return counts * i2 // d_in - counts * i1 // d_in


def _block_mask(
    scores: torch.Tensor, sparsity: float, counts: torch.Tensor | None, i1: int, i2: int, d_in: int
) -> torch.Tensor:
    """Per-row counts: each row's share of this tile; scalar: the lowest share of the whole tile
    (SparseGPT's own choice, adaptive across rows)."""
    if counts is not None:
        return lowest_per_row(scores, tile_counts(counts, i1, i2, d_in))
    k = int(scores.numel() * float(sparsity) + 1e-9)
    return lowest_k(scores.reshape(1, -1), k).view_as(scores)


@torch.no_grad()
def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float | torch.Tensor,
    pattern: Pattern = UNSTRUCTURED,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (pruned weight, mask). `hessian` is 2XᵀX/n of the layer's inputs (d_in × d_in)."""
    return sparsegpt_prune_group([weight], hessian, [sparsity], pattern, blocksize, percdamp)[0]


def _tile_mask(
    T: torch.Tensor,
    diag: torch.Tensor,
    parts: list[slice],
    sparsities: list[float | torch.Tensor],
    counts: list[torch.Tensor | None],
    i1: int,
    i2: int,
    d_in: int,
) -> torch.Tensor:
    """The tile's mask (transposed like T), chosen within each weight of the group on its own."""
    scores = T.T.pow(2) / diag.pow(2)[None, :]
    masks = [
        _block_mask(scores[rows], s, c, i1, i2, d_in)
        for rows, s, c in zip(parts, sparsities, counts)
    ]
    return torch.cat(masks).T.contiguous()


def _nm_group(
    T: torch.Tensor,
    diag: torch.Tensor,
    mask1: torch.Tensor,
    denom: torch.Tensor,
    cols: slice,
    n: int,
) -> None:
    """Choose the n of these m columns each row prunes, on the weights as updated so far, and
    mark them in the (transposed) tile mask and denominators in place."""
    scores = T[cols].pow(2).div_(diag[cols].pow(2)[:, None])  # m × rows: no transposes
    mask1[cols].scatter_(0, scores.topk(n, dim=0, largest=False).indices, True)
    denom[cols] = torch.where(mask1[cols], diag[cols, None], inf)


@torch.no_grad()
def sparsegpt_prune_group(
    weights: list[torch.Tensor],
    hessian: torch.Tensor,
    sparsities: list[float | torch.Tensor],
    pattern: Pattern = UNSTRUCTURED,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """SparseGPT on Linears that read the same input (q/k/v, gate/up): one H⁻¹ and one column
    loop over their stacked rows (rows are independent given H); each weight keeps its own
    sparsity and mask selection. Returns (pruned weight, mask) per weight."""
    W = torch.cat([w.detach().float() for w in weights])
    H = hessian.detach().float().clone().to(W.device)
    d_out, d_in = W.shape
    bounds = list(accumulate((w.shape[0] for w in weights), initial=0))
    parts = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    Hinv = _inverse_cholesky(H, percdamp)
    del H
    # per-row sparsity: exact per-row counts, as Wanda's masks have
    counts = [
        row_prune_counts(d_in, s, rows.stop - rows.start).to(W.device)
        if isinstance(s, torch.Tensor) and s.numel() > 1
        else None
        for rows, s in zip(parts, sparsities)
    ]
    mask = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, d_in, blocksize):
        i2 = min(i1 + blocksize, d_in)
        # the tile transposed: each column is a contiguous row, updated in place by a rank-1 BLAS
        # call (the published loop walks strided columns and builds a temporary per column)
        T = W[:, i1:i2].T.contiguous()
        Err = torch.empty_like(T)
        Hinv1 = Hinv[i1:i2, i1:i2]
        diag = torch.diag(Hinv1)
        if pattern.is_nm:
            mask1 = torch.zeros_like(T, dtype=torch.bool)
        else:
            mask1 = _tile_mask(T, diag, parts, sparsities, counts, i1, i2, d_in)
        # (w − q) / [H⁻¹]ᵢᵢ in one op per column: w / [H⁻¹]ᵢᵢ where pruned, w / ∞ = ±0 where
        # kept — bit for bit the published (w · m) / [H⁻¹]ᵢᵢ, NaN and ∞ included
        denom = torch.where(mask1, diag[:, None], inf)
        # per-column views made in one call each: the loop is bound by per-op dispatch
        rows, errs, denoms = T.unbind(0), Err.unbind(0), denom.unbind(0)
        for i in range(i2 - i1):
            if pattern.is_nm and i % pattern.m == 0:
                _nm_group(T, diag, mask1, denom, slice(i, i + pattern.m), pattern.n)
            err = torch.div(rows[i], denoms[i], out=errs[i])
            T[i:].addr_(Hinv1[i, i:], err, alpha=-1)  # also turns column i into q
        W[:, i1:i2] = T.T
        mask[:, i1:i2] = mask1.T
        W[:, i2:] -= Err.T @ Hinv[i1:i2, i2:]
    zero_masked_(W, mask)
    return [(W[rows].to(w.dtype), mask[rows]) for rows, w in zip(parts, weights)]
