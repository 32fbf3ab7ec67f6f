"""Row targets outside [0, 1] are clamped before they are rounded to whole weights.
Mutants this kills: tests/MUTATION.md §5."""

from __future__ import annotations

import pytest
import torch

from prunekit.allocation.ramps import exact_row_targets


def test_exact_row_targets_clamp_to_zero_and_one_before_counting():
    """1.5 and −0.5 of 4 inputs are 4 and 0 weights, not 6 and −2 (then 1.5 and −0.5 again)."""
    out = exact_row_targets(torch.tensor([1.5, 0.5, -0.5], dtype=torch.float64), 4)
    assert out.tolist() == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
