"""Depth repair without training (ReplaceMe-style): after a run of blocks [a, b) is removed, one
linear map T folded into the down projection of block p = a − 1 carries its output to the dense
model's input of block b.

Block p ends with h = r + D, r the residual stream after p's attention and D = s · M the MLP
branch (M = down_proj output, s = 1, or Granite's `residual_multiplier`). T minimises
Σ‖r + D·T − L‖² over calibration tokens (L = the dense model's input of block b, or its final
hidden state before the norm when b is the last layer), ridge-regularised towards a prior P:
T = (DᵀD + λI)⁻¹ (Dᵀ(L − r) + λP), λ = ridge · mean(diag DᵀD), accumulated and solved in
float64. P = I (default) shrinks towards no repair, P = 0 is the plain ridge; they agree at
ridge 0. With few calibration tokens per hidden dimension a weak ridge overfits: smollm2-135m
(d = 576) without layers 13–14, held-out python ppl 26.56 unrepaired; 1,024 calibration tokens:
33.0 at ridge 1e-4, 25.7 at 0.1, 24.5 at 1 (prior I); 4,096 tokens: 23.9 / 23.7 / 23.8 at
0.01 / 0.1 / 1 (dense 21.8). Hence the default 0.1 with P = I.
Folding D·T into down_proj (y = x Wᵀ + c ↦ y T) is W ← Tᵀ W, c ← c T: the export stays stock.

Memory: the walk over the layers holds four streams of N × T × d values (the dense stream,
the pruned stream entering p, p's output and its branch D) plus two d × d float64 matrices.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from prunekit.errors import PrunekitError
from prunekit.models.adapters import DecoderAdapter
from prunekit.structural.depth import _Stack, check_layers

if TYPE_CHECKING:
    from prunekit.calibration.context import RunContext

RIDGE = 0.1  # default ridge, relative to the mean diagonal of DᵀD (see the module docstring)
# families whose MLP branch enters the residual stream linearly: h = r + s · down_proj(...)
PRIORS = ("zero", "identity")  # what the ridge shrinks T towards: nothing, or no repair
PRIOR = "identity"
EXACT_FAMILIES = ("llama", "qwen2", "qwen3", "mistral", "phi3", "starcoder2", "granite")


def branch_scale(model: nn.Module, adapter: DecoderAdapter) -> float:
    """s in h = r + s · down_proj(...): 1, or Granite's residual multiplier; refuses other families."""
    if adapter.family not in EXACT_FAMILIES:
        raise PrunekitError(
            f"depth repair folds into down_proj, which is exact only where the MLP output is added "
            f"straight to the residual ({', '.join(EXACT_FAMILIES)}); '{adapter.family}' is not: "
            "use repair none"
        )
    if adapter.family == "granite":
        return float(getattr(model.config, "residual_multiplier", 1.0))
    return 1.0


def maximal_runs(drop: list[int]) -> list[tuple[int, int]]:
    """Sorted maximal runs [a, b) of consecutive layer indices, e.g. [5, 2, 3] → [(2, 4), (5, 6)]."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(drop)):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def check_fit(ridge: float, prior: str) -> None:
    """A finite ridge ≥ 0 and a known prior, or one clear error."""
    if prior not in PRIORS:
        raise PrunekitError(
            f"unknown depth repair prior '{prior}'; choose one of: {', '.join(PRIORS)}"
        )
    if not isinstance(ridge, int | float) or ridge < 0 or not math.isfinite(ridge):
        raise PrunekitError(f"depth repair ridge must be a finite number ≥ 0, got {ridge!r}")


def fit_linear_map(
    gram: torch.Tensor, cross: torch.Tensor, ridge: float = RIDGE, prior: str = PRIOR
) -> torch.Tensor:
    """T = (G + λI)⁻¹ (C + λP) in float64, λ = ridge · mean(diag G), from G = DᵀD and
    C = Dᵀ(L − r); the ridge shrinks T towards P = 0 (`prior="zero"`) or P = I ("identity")."""
    check_fit(ridge, prior)
    gram, cross = gram.double(), cross.double()
    lam = ridge * float(gram.diagonal().mean())
    eye = torch.eye(gram.shape[0], dtype=torch.float64, device=gram.device)
    rhs = cross + lam * eye if prior == "identity" else cross
    t, info = torch.linalg.solve_ex(gram + lam * eye, rhs)
    if int(info) != 0 or not torch.isfinite(t).all():
        raise PrunekitError(
            "depth repair: the MLP outputs' Gram matrix is singular; raise ridge (e.g. 1e-4) "
            "or calibrate on more tokens"
        )
    return t


class LinearFit:
    """Accumulates DᵀD, Dᵀ(L − r) and the squared norms for the relative errors, in float64."""

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        f64 = dict(dtype=torch.float64, device=device)
        self.gram = torch.zeros(dim, dim, **f64)
        self.cross = torch.zeros(dim, dim, **f64)
        self.y_sq = self.l_sq = self.dy = self.dd = 0.0  # Σ‖Y‖², Σ‖L‖², tr(DᵀY), tr(DᵀD)
        self.rows = 0

    def add(
        self,
        branch: torch.Tensor,
        residual: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> None:
        """One batch: D, r and L (… × d); `weight` (one per position) weights the squared errors."""
        d = branch.reshape(-1, branch.shape[-1]).double()
        y = target.reshape(-1, d.shape[1]).double() - residual.reshape(-1, d.shape[1]).double()
        big_l = target.reshape(-1, d.shape[1]).double()
        if weight is not None:
            w = weight.reshape(-1, 1).to(d).sqrt()
            d, y, big_l = d * w, y * w, big_l * w
        self.gram += d.T @ d
        self.cross += d.T @ y
        self.y_sq += float((y * y).sum())
        self.l_sq += float((big_l * big_l).sum())
        self.dy += float((d * y).sum())
        self.dd += float((d * d).sum())
        self.rows += d.shape[0]

    def solve(self, ridge: float = RIDGE, prior: str = PRIOR) -> torch.Tensor:
        return fit_linear_map(self.gram, self.cross, ridge, prior)

    def errors(self, t: torch.Tensor) -> tuple[float, float]:
        """Relative squared error Σ‖r + D·X − L‖² / Σ‖L‖² for X = I (no repair) and X = T."""
        before = self.y_sq - 2 * self.dy + self.dd
        after = self.y_sq - 2 * float((t * self.cross).sum()) + float((t * (self.gram @ t)).sum())
        scale = self.l_sq or 1.0
        return max(before, 0.0) / scale, max(after, 0.0) / scale


def identity_distance(t: torch.Tensor) -> float:
    """‖T − I‖_F / ‖I‖_F (= ‖T − I‖_F / √d): 0 when the repair leaves block p as it was."""
    eye = torch.eye(t.shape[0], dtype=t.dtype, device=t.device)
    return float(torch.linalg.norm(t - eye) / math.sqrt(t.shape[0]))


@torch.no_grad()
def fold_into_down(layer: nn.Module, adapter: DecoderAdapter, t: torch.Tensor) -> None:
    """Make the down projection output y·T: W ← Tᵀ W, bias c ← c T (computed in float64)."""
    down = layer.get_submodule(adapter.mlp.output)
    t = t.double().to(down.weight.device)
    if t.shape != (down.out_features, down.out_features):
        raise PrunekitError(
            f"depth repair map is {tuple(t.shape)}, the down projection outputs "
            f"{down.out_features}; fit T on this model's hidden states"
        )
    down.weight.copy_((t.T @ down.weight.double()).to(down.weight.dtype))
    if down.bias is not None:
        down.bias.copy_((down.bias.double() @ t).to(down.bias.dtype))


@torch.no_grad()
def run_with_branch(
    stack: _Stack, idx: int, stream: list[torch.Tensor], scale: float
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Layer `idx` over the stream: its outputs and its MLP branch D = s · down_proj output."""
    down = stack.layers[idx].get_submodule(stack.adapter.mlp.output)
    branches: list[torch.Tensor] = []
    handle = down.register_forward_hook(lambda _m, _i, out: branches.append(out.detach() * scale))
    try:
        outputs = stack.run(idx, stream)
    finally:
        handle.remove()
    if len(branches) != len(outputs):
        raise PrunekitError(
            f"depth repair expects one down projection call per layer and batch; layer {idx} made "
            f"{len(branches)} for {len(outputs)} batches"
        )
    return outputs, branches


def fit_run(
    outputs: list[torch.Tensor],
    branches: list[torch.Tensor],
    targets: list[torch.Tensor],
    ridge: float = RIDGE,
    weights: list[torch.Tensor] | None = None,
    prior: str = PRIOR,
) -> tuple[torch.Tensor, dict]:
    """T for one run from block p's outputs, branches D and the targets L; with its fit report."""
    fit = LinearFit(branches[0].shape[-1], branches[0].device)
    for b, (out, d, target) in enumerate(zip(outputs, branches, targets)):
        fit.add(d, out.double() - d.double(), target, None if weights is None else weights[b])
    t = fit.solve(ridge, prior)
    before, after = fit.errors(t)
    return t, {
        "fit_before": before,
        "fit_after": after,
        "t_identity_distance": identity_distance(t),
        "rows": fit.rows,
    }


def repaired_stream(
    outputs: list[torch.Tensor], branches: list[torch.Tensor], t: torch.Tensor
) -> list[torch.Tensor]:
    """r + D·T per batch (= block p's output after the fold, up to rounding), in the stream dtype."""
    out = []
    for h, d in zip(outputs, branches):
        delta = (d.double() @ (t.to(d.device) - torch.eye(t.shape[0], device=d.device))).to(h)
        out.append(h + delta)
    return out


@torch.no_grad()
def repair_runs(
    ctx: RunContext,
    drop: list[int],
    ridge: float = RIDGE,
    prior: str = PRIOR,
    skip_layer0: bool = False,
) -> list[dict]:
    """Fit and fold T for every maximal run of `drop` into the block before it (in place), on
    the context's batches (and answer weights).

    The model still has every layer (remove `drop` afterwards with `depth.remove_layers`).
    Runs go first to last, each fitted on the stream of the model with the earlier runs already
    removed and repaired; the targets come from the model as given. One dict per run: run,
    layer (the folded block), fit_before/fit_after (relative squared error), t_identity_distance,
    rows, seconds. A run starting at layer 0 is refused, or with `skip_layer0` left unrepaired
    (still removed from the stream the later runs are fitted on).
    """
    model, adapter, weights = ctx.model, ctx.adapter, ctx.weights
    num_layers = len(adapter.layers(model))
    check_layers(list(drop), num_layers)
    check_fit(ridge, prior)
    runs = maximal_runs(drop)
    if runs[0][0] == 0 and not skip_layer0:
        raise PrunekitError(
            f"depth repair cannot fix the run {list(runs[0])} that starts at layer 0 (no block "
            "before it to fold into); keep layer 0 or use repair none"
        )
    scale = branch_scale(model, adapter)
    with ctx.placed() as device:
        stack = _Stack(model, adapter, ctx.batches, device)
        before = {a - 1: (a, b) for a, b in runs if a > 0}
        dropped = set(drop)
        dense = pruned = stack.h0
        held = None  # (run, p's input, p's outputs, p's branches, t0) until the target is reached
        reports: list[dict] = []
        bar = tqdm(range(num_layers), desc="depth repair", unit="layer", disable=not ctx.progress)
        for idx in bar:
            same = pruned is dense
            if idx in before:
                outs, branches = run_with_branch(stack, idx, pruned, scale)
                held = (before[idx], pruned, outs, branches, time.perf_counter())
                dense = outs if same else stack.run(idx, dense)
                pruned = None
            elif idx in dropped:
                dense = stack.run(idx, dense)
            else:
                dense = stack.run(idx, dense)
                pruned = dense if same else stack.run(idx, pruned)
            if held is not None and held[0][1] == idx + 1:  # dense is now the run's target L
                (a, b), p_in, outs, branches, t0 = held
                t, report = fit_run(outs, branches, dense, ridge, weights, prior)
                fold_into_down(stack.layers[a - 1], adapter, t)
                pruned = stack.run(a - 1, p_in)  # block p as folded
                reports.append(
                    {"run": [a, b], "layer": a - 1, **report, "seconds": time.perf_counter() - t0}
                )
                held = None
        return reports
