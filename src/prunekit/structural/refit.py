"""Training-free refit of a consumer projection after structured removal (OBS / SlimGPT / ZipLM style).

When MLP channels or attention head groups go, the Linear that reads them (down_proj, o_proj)
loses input columns R and keeps K. With X the dense input over calibration tokens and
G = XᵀX, the kept columns are re-solved so that W'_K X_K matches the dense output W X:

    W'_K = argmin ‖W X − W'_K X_K‖² + λ‖W'_K − W_K‖²  =  W_K + W_R G[R, K] (G[K, K] + λI)⁻¹,

λ = damp · mean(diag G[K, K]), solved in float64 (Cholesky). At damp 0 this is the plain least
squares W G[:, K] G[K, K]⁻¹; the ridge pulls towards the sliced weights W_K rather than towards
zero, so directions the calibration tokens never excite keep their dense values (with fewer
tokens than kept columns, G[K, K] is singular and a ridge towards zero would erase them).
Only values change: the shape is the sliced one, and the bias is untouched (it cancels).
Kept channels' inputs do not depend on removed ones (MLP rows and attention heads are
independent), so X_K is exactly what the pruned layer sees on the same block input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from prunekit.errors import PrunekitError

# λ relative to mean(diag G[K, K]); the ridge is towards the sliced weights, so large values fall
# back to plain slicing. Chosen on smollm2-135m (python windows, down_proj of layers 0/4/8/12, FFN
# keep 0.75 and 0.5, relative error on 2,048 held-out tokens): with 4,096 calibration tokens
# (3.6-5.3x the kept columns; 64 x 512 tokens are ~7x for qwen2.5-coder-0.5b) 0.3 was the best
# damp or within 4% of it in all 8 cells (tried 0.03-10), 22-43% below plain slicing; SparseGPT's
# 0.01 fits the calibration tokens too closely (worse than slicing in 18 of 24 cells with 512-2,048
# tokens); with 512 tokens (fewer than the kept columns) 0.3 is still no worse than slicing in
# any cell (1-3 is best there).
DAMP = 0.3


def check_damp(damp, what: str = "refit damp") -> None:
    """One PrunekitError line unless `damp` is a finite number ≥ 0."""
    if isinstance(damp, bool) or not isinstance(damp, int | float) or not 0 <= damp < math.inf:
        raise PrunekitError(f"{what} must be a finite number ≥ 0, got {damp!r}")


def _check(weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damp: float) -> None:
    d_in = weight.shape[1]
    if gram.shape != (d_in, d_in):
        raise PrunekitError(
            f"refit: the Gram matrix is {tuple(gram.shape)}, the weight has {d_in} input columns"
        )
    if keep.numel() == 0 or keep.unique().numel() != keep.numel():
        raise PrunekitError("refit: the kept columns must be distinct and at least one")
    if int(keep.min()) < 0 or int(keep.max()) >= d_in:
        raise PrunekitError(f"refit: kept columns must lie in [0, {d_in})")
    check_damp(damp)


def removed_columns(d_in: int, keep: torch.Tensor) -> torch.Tensor:
    """The input columns not in `keep`, ascending."""
    mask = torch.ones(d_in, dtype=torch.bool, device=keep.device)
    mask[keep] = False
    return mask.nonzero().squeeze(1)


def _spd_solve(s: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """S⁻¹ rhs for a symmetric positive semi-definite S (Cholesky; pseudo-inverse if singular)."""
    chol, info = torch.linalg.cholesky_ex(s)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, chol)
    return torch.linalg.pinv(s, hermitian=True) @ rhs


@dataclass
class _Solve:
    """One refit in float64: the change Δ of the kept columns and what its errors are read from."""

    delta: torch.Tensor  # W'_K − W_K, d_out × |K|
    rhs: torch.Tensor  # G[K, R] W_Rᵀ, |K| × d_out
    lam: float
    before: float  # tr(W_R G[R, R] W_Rᵀ): the error of plain slicing, unnormalised


def _solve(weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damp: float) -> _Solve:
    _check(weight, gram, keep, damp)
    w = weight.detach().double()
    g = gram.detach().to(w.device).double()
    removed = removed_columns(w.shape[1], keep)
    w_r = w.index_select(1, removed)
    g_k = g.index_select(0, keep)
    g_kk = g_k.index_select(1, keep)
    lam = float(damp * g_kk.diagonal().mean())
    s = g_kk + lam * torch.eye(len(keep), dtype=g.dtype, device=g.device)
    rhs = g_k.index_select(1, removed) @ w_r.T
    g_rr = g.index_select(0, removed).index_select(1, removed)
    before = float(((w_r @ g_rr) * w_r).sum())
    return _Solve(_spd_solve(s, rhs).T, rhs, lam, before)


def refit_columns(
    weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damp: float = DAMP
) -> torch.Tensor:
    """W'_K = W_K + W_R G[R,K] (G[K,K] + λI)⁻¹ (d_out × |K|, the weight's dtype) from the dense
    weight (d_out × d_in), G = XᵀX of its input and the kept columns `keep`."""
    keep = keep.to(weight.device).long()
    delta = _solve(weight, gram, keep, damp).delta
    return (weight.detach().double().index_select(1, keep) + delta).to(weight.dtype)


def _dense_energy(weight: torch.Tensor, gram: torch.Tensor) -> float:
    """tr(W G Wᵀ) = ‖W X‖² (a sum of positive terms: float32 products, float64 sum)."""
    w = weight.detach().float()
    return float(((w @ gram.detach().to(w.device).float()) * w).double().sum())


def output_errors(
    weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, new: torch.Tensor
) -> dict[str, float]:
    """Relative output error ‖W X − W'_K X_K‖² / ‖W X‖² over the calibration tokens, from G
    alone (tr(D G Dᵀ) / tr(W G Wᵀ)): `before` for plain slicing (W'_K = W_K), `after` for `new`."""
    keep = keep.to(weight.device).long()
    w = weight.detach().double()
    g = gram.detach().to(w.device).double()
    total = float(((w @ g) * w).sum())
    if total <= 0:
        return {"before": 0.0, "after": 0.0}
    removed = removed_columns(w.shape[1], keep)
    w_r = w.index_select(1, removed)
    g_rr = g.index_select(0, removed).index_select(1, removed)
    before = float(((w_r @ g_rr) * w_r).sum())
    d = w.clone()
    d[:, keep] -= new.detach().to(w.device).double()
    after = float(((d @ g) * d).sum())
    return {"before": before / total, "after": after / total}


@torch.no_grad()
def refit_linear(
    linear: nn.Linear,
    dense: torch.Tensor,
    gram: torch.Tensor,
    keep: torch.Tensor,
    damp: float = DAMP,
) -> dict[str, float]:
    """Overwrite a sliced Linear's weight (|K| input columns) with the refit of its dense weight
    `dense` on kept columns `keep`; return the relative output errors before and after."""
    keep = keep.to(dense.device).long()
    if linear.weight.shape != (dense.shape[0], len(keep)):
        raise PrunekitError(
            f"refit: the sliced weight is {tuple(linear.weight.shape)}, expected "
            f"{(dense.shape[0], len(keep))} from the dense weight and the kept columns"
        )
    sol = _solve(dense, gram, keep, damp)
    new = dense.detach().double().index_select(1, keep) + sol.delta
    linear.weight.data.copy_(new.to(linear.weight.device, linear.weight.dtype))
    # at the ridge optimum G_KK Δᵀ = rhs − λΔᵀ, so ‖W X − W'_K X_K‖² = before − tr(Δ rhs) − λ‖Δ‖²
    gain = float((sol.delta.T * sol.rhs).sum()) + sol.lam * float(sol.delta.pow(2).sum())
    total = _dense_energy(dense, gram)
    if total <= 0:
        return {"before": 0.0, "after": 0.0}
    return {"before": sol.before / total, "after": max(sol.before - gain, 0.0) / total}


def consumer_part(kind, layer: nn.Module):
    """The one column part of a group kind in a block: the Linear that reads the groups' outputs
    (o_proj for head groups, the MLP output for channels) and each group's input columns in it."""
    parts = [p for p in kind.parts(layer) if p.dim == 1]
    if len(parts) != 1:
        raise PrunekitError(f"refit: the {kind.name} groups have no single consumer projection")
    return parts[0]


@torch.no_grad()
def keep_and_refit(
    kind, layer: nn.Module, idx: torch.Tensor, gram: torch.Tensor, damp: float = DAMP
) -> dict[str, float]:
    """Keep groups `idx` of one block (`kind.keep`), then refit the consumer's kept columns from
    `gram`, the XᵀX of the consumer's input on the block before the cut."""
    part = consumer_part(kind, layer)
    name, cols = part.name, torch.sort(part.index[idx.cpu()].flatten()).values
    dense = layer.get_submodule(name).weight.data  # `keep` replaces the Parameter; this stays
    kind.keep(layer, idx)
    return refit_linear(layer.get_submodule(name), dense, gram, cols.to(dense.device), damp)
