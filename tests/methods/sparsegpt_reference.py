"""Naive SparseGPT written from the paper (Frantar & Alistarh 2023, §3-4), for tests only.

Column by column in float64, with no Cholesky trick and no lazy batched updates: before column j is
fixed, the inverse Hessian of the still-free weights F = {j, …, d-1} is inverted from scratch, and
the Optimal Brain Surgeon step δw_F = −(w_j − q_j) / [H_F⁻¹]_00 · [H_F⁻¹]_0,: moves all of them.
The mask is chosen adaptively every `mask_block` columns (N:M: every M columns) on the weights as
updated so far, by w² / [H_F⁻¹]_00 with F starting at the weight's own column.
"""

from __future__ import annotations

import torch

from prunekit.methods.patterns import Pattern


def _free_inverse_diagonals(h: torch.Tensor) -> torch.Tensor:
    """d_j = [(H_{j:, j:})⁻¹]_00: the OBS denominator of column j once columns < j are fixed."""
    return torch.stack([torch.linalg.inv(h[j:, j:])[0, 0] for j in range(h.shape[0])])


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k lowest entries of a 1-D tensor."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[torch.argsort(scores)[:k]] = True
    return mask


def _tile_mask(
    scores: torch.Tensor, sparsity: float | torch.Tensor, i1: int, i2: int, d_in: int
) -> torch.Tensor:
    """Scalar sparsity: the lowest ⌊numel·s⌋ scores of the whole tile, across rows. Per-row
    sparsity: row r prunes its pro-rata share ⌊k_r·i2/d⌋ − ⌊k_r·i1/d⌋ of its k_r = ⌊d·s_r⌋."""
    if not isinstance(sparsity, torch.Tensor) or sparsity.numel() == 1:
        k = int(scores.numel() * float(sparsity) + 1e-9)
        return _lowest(scores.flatten(), k).view_as(scores)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    for r, s in enumerate(sparsity.tolist()):
        k_r = int(d_in * s + 1e-3)
        mask[r] = _lowest(scores[r], k_r * i2 // d_in - k_r * i1 // d_in)
    return mask


def _group_mask(scores: torch.Tensor, n: int) -> torch.Tensor:
    """N:M: the n lowest scores of each row of one M-column group."""
    return torch.stack([_lowest(row, n) for row in scores])


@torch.no_grad()
def reference_sparsegpt(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float | torch.Tensor,
    pattern: Pattern,
    mask_block: int,
    percdamp: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (pruned weight in float64, mask) for weight (d_out × d_in) and H = 2XᵀX/n."""
    w = weight.double().clone()
    h = hessian.double().clone()
    d_out, d_in = w.shape
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += percdamp * h.diagonal().mean() * torch.eye(d_in, dtype=h.dtype)
    denom = _free_inverse_diagonals(h)
    mask = torch.zeros(d_out, d_in, dtype=torch.bool)
    step = pattern.m if pattern.is_nm else mask_block
    for j in range(d_in):
        if j % step == 0:
            cols = slice(j, min(j + step, d_in))
            scores = w[:, cols].pow(2) / denom[cols]
            if pattern.is_nm:
                mask[:, cols] = _group_mask(scores, pattern.n)
            else:
                mask[:, cols] = _tile_mask(scores, sparsity, j, cols.stop, d_in)
        free_inv = torch.linalg.inv(h[j:, j:])
        q = w[:, j].masked_fill(mask[:, j], 0.0)
        err = (w[:, j] - q) / free_inv[0, 0]
        w[:, j:] -= err[:, None] * free_inv[0][None, :]
        w[:, j] = q
    return w, mask
