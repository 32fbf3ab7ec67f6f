"""A pooled, paired comparison of two models over several code benchmarks (e.g. every
HumanEval-X language): McNemar counts over the (benchmark, problem) pairs both were scored on.

Input is each model's per-problem rows by benchmark (the `*_problems.jsonl` files the runner
writes, one sample per problem). Pooling languages multiplies the pairs (5 x 164) and so
narrows what a single 164-problem benchmark can separate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunekit.errors import PrunekitError

Rows = dict[str, list[dict]]  # benchmark name -> its per-problem rows


@dataclass(frozen=True)
class PairedCounts:
    """Paired outcomes of model A and model B on the same problems."""

    pairs: int
    both: int  # solved by A and B
    only_a: int  # solved by A only
    only_b: int  # solved by B only
    neither: int
    unpaired: int = 0  # (benchmark, problem) pairs only one model was scored on
    by_benchmark: dict = field(default_factory=dict)

    @property
    def pass_a(self) -> float:
        return (self.both + self.only_a) / self.pairs if self.pairs else float("nan")

    @property
    def pass_b(self) -> float:
        return (self.both + self.only_b) / self.pairs if self.pairs else float("nan")

    @property
    def paired_benchmarks(self) -> list[str]:
        """The benchmarks both models were scored on (the others hold only unpaired problems)."""
        return [b for b, c in self.by_benchmark.items() if c["pairs"]]

    @property
    def p_value(self) -> float:
        """Exact two-sided McNemar test (binomial on the discordant pairs, p = 1/2)."""
        return mcnemar_exact(self.only_a, self.only_b)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(
            pass_a=round(self.pass_a, 6),
            pass_b=round(self.pass_b, 6),
            difference=round(self.pass_a - self.pass_b, 6),
            p_value=round(self.p_value, 6),
        )
        return out


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: P(a result at least this lopsided | no difference)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def outcomes(rows: list[dict], bench: str) -> dict[str, bool]:
    """task_id -> passed from one benchmark's per-problem rows (one greedy sample each)."""
    out = {}
    for row in rows:
        if row.get("n", 1) != 1 or not isinstance(row.get("passed"), bool):
            raise PrunekitError(
                f"{bench}: paired counts need one sample per problem (greedy rows with "
                f"'passed'); '{row.get('task_id')}' has n={row.get('n')}"
            )
        out[row["task_id"]] = row["passed"]
    return out


def count(a: dict[str, bool], b: dict[str, bool]) -> dict:
    """Paired counts of two models' outcomes on the task ids both have (the rest: unpaired)."""
    shared = a.keys() & b.keys()
    both = sum(a[t] and b[t] for t in shared)
    only_a = sum(a[t] and not b[t] for t in shared)
    only_b = sum(b[t] and not a[t] for t in shared)
    unpaired = len(a.keys() ^ b.keys())
    return {
        "pairs": len(shared),
        "both": both,
        "only_a": only_a,
        "only_b": only_b,
        "neither": len(shared) - both - only_a - only_b,
        "unpaired": unpaired,
    }


def pooled_paired(a: Rows, b: Rows) -> PairedCounts:
    """Paired counts over the union of (benchmark, problem) pairs of `a` and `b`, pooled and
    per benchmark; pairs scored for one model only are counted as `unpaired`, not compared."""
    per = {}
    for bench in sorted(a.keys() | b.keys()):
        per[bench] = count(outcomes(a.get(bench, []), bench), outcomes(b.get(bench, []), bench))
    totals = {k: sum(c[k] for c in per.values()) for k in count({}, {})}
    if totals["pairs"] == 0:
        raise PrunekitError("the two models share no scored problems; nothing to compare")
    for counts in per.values():
        counts["p_value"] = round(mcnemar_exact(counts["only_a"], counts["only_b"]), 6)
    return PairedCounts(**totals, by_benchmark=per)


def read_rows(paths: dict[str, Path]) -> Rows:
    """Per-problem rows by benchmark from `*_problems.jsonl` files."""
    out: Rows = {}
    for bench, path in paths.items():
        text = Path(path).read_text(encoding="utf-8")
        out[bench] = [json.loads(line) for line in text.splitlines() if line.strip()]
    return out
