"""OWL (Yin et al., 2024): blocks with more activation outliers keep more weights.

o_b = share of Wanda scores |W_ij|·a_j above M × their mean, over all Linears of block b
(pooled, as in the reference code: "layer" there means decoder layer). The ratios are min-max
normalised to [0, 2λ] and subtracted from s, then re-centred so the size-weighted mean is s.
"""

from __future__ import annotations

import torch

from prunekit.allocation.ramps import minmax, recentre
from prunekit.calibration.context import RunContext
from prunekit.calibration.engine import BlockContext
from prunekit.calibration.stats import SQ_NORM
from prunekit.methods.scores import wanda_scores

DEFAULT_M = 5.0
DEFAULT_LAMBDA = 0.08


def outlier_ratio(scores: list[torch.Tensor], m: float = DEFAULT_M) -> float:
    """Share of all entries (pooled over the tensors) greater than `m` × their pooled mean."""
    total = sum(s.numel() for s in scores)
    mean = sum(float(s.double().sum()) for s in scores) / total
    return sum(int((s > m * mean).sum()) for s in scores) / total


def owl_block_sparsity(
    ratios: torch.Tensor, sparsity: float, lam: float, sizes: torch.Tensor
) -> torch.Tensor:
    """s_b = s − 2λ·norm(o_b) + const, clipped and re-centred to the size-weighted mean s."""
    return recentre(-2 * lam * minmax(ratios), sizes, sparsity)


@torch.no_grad()
def owl_outlier_ratios(run: RunContext, m: float = DEFAULT_M) -> list[float]:
    """One dense statistics pass through the engine: the outlier ratio of every block."""
    ratios: list[float] = []

    def block_fn(ctx: BlockContext) -> None:
        stats = ctx.collect({SQ_NORM}, pass_on=True)  # nothing edited: no second forward
        scores = [wanda_scores(lin.weight, stats[n].act_norm) for n, lin in ctx.linears.items()]
        ratios.append(outlier_ratio(scores, m))

    run.engine("OWL outlier ratios").run(block_fn)
    return ratios
