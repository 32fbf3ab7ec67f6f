"""How many groups each block loses: a relative weight per block, scaled to meet a parameter budget.

Weights (`RATIOS`):
- `uniform`: every block alike;
- `skip`: LLM-Pruner's fixed choice — the first `skip_first` and last `skip_last` blocks are left
  whole and the others share the budget (so they lose more). LLM-Pruner prunes blocks 4–30 of
  LLaMA-7B's 32 (skips 4 first, 2 last); scaled to a 24-block model that is 3 first, 1 last
  (the defaults);
- `adaptive` (SAAP): a block's weight is the fluctuation of its groups' importances — the
  coefficient of variation std/mean (population std, importances taken without the fused
  score's constant log σ term) — divided by the mean over blocks. Reading: when a block's
  importance is concentrated in a few groups (high CV), its low tail carries a small share of
  the block's total importance, so it can lose more groups for the same damage; a block whose
  groups matter about equally (low CV) loses fewer.
- `stable`: the opposite reading of the same fluctuation — weight ∝ mean CV / CV, so blocks whose
  groups matter unevenly (high CV: a few groups carry the block, as in the first blocks of
  qwen2.5-coder) are protected and evenly-important blocks lose more. Both are kept because the
  SAAP abstract does not fix the direction; benchmarks/results/saap_*.md measures them.

`allocate` finds the scale k by bisection so that Σ_l cost_l · clip(k·w_l, 0, cap_l) equals the
budget (cap_l: the block's `max_ratio`, and never its last `min_keep` groups), then rounds to
whole steps by largest remainder (ties: the block whose next group is least important), so the
removed parameters are within half a step's cost of the budget. A budget the caps cannot hold
is one PrunekitError line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prunekit.errors import PrunekitError

RATIOS = ("adaptive", "stable", "uniform", "skip")


def fluctuation(scores: torch.Tensor, offset: float = 0.0) -> float:
    """Coefficient of variation std/mean of a block's group importances (0 for an all-zero block)."""
    s = scores.double() - offset
    mean = float(s.mean())
    return float(s.std(unbiased=False)) / mean if mean > 0 else 0.0


def layer_weights(
    method: str,
    scores: Sequence[torch.Tensor],
    offset: float = 0.0,
    skip_first: int = 3,
    skip_last: int = 1,
) -> list[float]:
    """Relative pruning weight of every block for `method` (see the module docstring)."""
    n = len(scores)
    if method == "uniform":
        return [1.0] * n
    if method == "skip":
        if skip_first + skip_last >= n:
            raise PrunekitError(
                f"ratios skip leaves no block to prune: skip_first {skip_first} + skip_last "
                f"{skip_last} ≥ {n} blocks; lower them"
            )
        return [0.0 if i < skip_first or i >= n - skip_last else 1.0 for i in range(n)]
    if method in ("adaptive", "stable"):
        cv = [fluctuation(s, offset) for s in scores]
        mean = sum(cv) / n
        if mean <= 0:
            return [1.0] * n
        # a flat block (CV 0) keeps a tiny weight: it stays reachable, as under uniform ratios,
        # so a budget that passed check_budget cannot fail after the gradient pass
        if method == "adaptive":
            return [max(c, 1e-6 * mean) / mean for c in cv]
        return [mean / max(c, 1e-6 * mean) for c in cv]  # a flat block (CV 0) is capped later
    raise PrunekitError(f"unknown ratios '{method}'; choose one of: {', '.join(RATIOS)}")


@dataclass(frozen=True)
class Blocks:
    """One group kind across the blocks: groups, parameters per group, and how many may go."""

    counts: list[int]
    costs: list[int]
    caps: list[int]  # most groups a block may lose (a multiple of `step`)
    step: int = 1

    @property
    def total(self) -> int:
        return sum(c * g for c, g in zip(self.costs, self.counts))

    @classmethod
    def build(
        cls, counts: list[int], costs: list[int], max_ratio: float, min_keep: int, step: int = 1
    ) -> Blocks:
        caps = [
            max(0, min(math.floor(max_ratio * g + 1e-9), g - min_keep)) // step * step
            for g in counts
        ]
        return cls(counts, costs, caps, step)


def _removed(blocks: Blocks, weights: list[float], k: float) -> list[float]:
    return [min(k * w * g, cap) for w, g, cap in zip(weights, blocks.counts, blocks.caps)]


def allocate(
    blocks: Blocks,
    weights: list[float],
    target: float,
    scores: Sequence[torch.Tensor] | None = None,
    what: str = "the budget",
) -> list[int]:
    """Groups removed per block (multiples of `blocks.step`) so Σ cost·removed ≈ `target` parameters."""
    if target <= 0:
        return [0] * len(blocks.counts)
    costs = blocks.costs
    reachable = sum(c * cap for c, cap, w in zip(costs, blocks.caps, weights) if w > 0)
    if target > reachable + 1e-6:
        raise PrunekitError(
            f"{what} asks for {target:,.0f} parameters but at most {reachable:,} can go "
            f"under the per-block limits (max_ratio, groups that must stay, skipped blocks); "
            f"lower it or relax those limits"
        )
    hi = max(cap / (w * g) for w, g, cap in zip(weights, blocks.counts, blocks.caps) if w > 0)
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        got = sum(c * x for c, x in zip(costs, _removed(blocks, weights, mid)))
        lo, hi = (mid, hi) if got < target else (lo, mid)
    x = _removed(blocks, weights, hi)
    step = blocks.step
    n = [int(math.floor(v / step + 1e-9)) * step for v in x]
    left = target - sum(c * r for c, r in zip(costs, n))

    def next_score(i: int) -> float:
        if scores is None or n[i] >= len(scores[i]):
            return 0.0
        return float(torch.sort(scores[i].double()).values[n[i]])

    order = sorted(
        (i for i in range(len(n)) if n[i] + step <= blocks.caps[i] and weights[i] > 0),
        key=lambda i: (-round((x[i] - n[i]) / step, 9), next_score(i), i),
    )
    for i in order:
        unit = step * costs[i]
        if left > unit / 2:
            n[i] += step
            left -= unit
    return n
