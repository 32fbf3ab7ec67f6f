"""Sparsity patterns: unstructured or N:M (N zeros in every M consecutive input columns)."""

from __future__ import annotations

from dataclasses import dataclass

from prunekit.config.options import OptionError, Surface
from prunekit.errors import PrunekitError


@dataclass(frozen=True)
class Pattern:
    """`n`/`m` are set for N:M; both 0 for unstructured."""

    n: int = 0
    m: int = 0

    @property
    def is_nm(self) -> bool:
        return self.m > 0

    @property
    def sparsity(self) -> float:
        return self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.is_nm else "unstructured"


UNSTRUCTURED = Pattern()


def parse_pattern(text: str) -> Pattern:
    if text == "unstructured":
        return UNSTRUCTURED
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise PrunekitError(
            f"unknown pattern '{text}'; use unstructured or N:M with 0 < N < M, e.g. 2:4 or 4:8"
        ) from None
    if not 0 < n < m:
        raise PrunekitError(f"pattern '{text}' needs 0 < N < M, e.g. 2:4")
    return Pattern(n, m)


def target_sparsity(sparsity: float | None, pattern: Pattern) -> float:
    """The target sparsity: N/M for N:M (a conflicting explicit value is an error), else [0, 1).
    Errors are templates each surface spells (`--sparsity` on the CLI, `sparsity` in a recipe)."""
    if pattern.is_nm:
        if sparsity is not None and abs(sparsity - pattern.sparsity) > 1e-9:
            raise OptionError(
                f"pattern {pattern} means sparsity {pattern.sparsity:g}, not {sparsity:g}; "
                "drop <sparsity> or set it to N/M"
            )
        return pattern.sparsity
    if sparsity is None:
        raise OptionError("give <sparsity> S (0 ≤ S < 1) or an N:M <pattern> such as 2:4")
    if not 0.0 <= sparsity < 1.0:
        raise OptionError(f"sparsity {sparsity:g} is outside [0, 1); use e.g. <sparsity> 0.5")
    return float(sparsity)


def resolve_sparsity(sparsity: float | None, pattern: Pattern) -> float:
    """`target_sparsity` with its errors spelled as the CLI's flags."""
    try:
        return target_sparsity(sparsity, pattern)
    except OptionError as exc:
        raise PrunekitError(exc.render(Surface.CLI)) from None
