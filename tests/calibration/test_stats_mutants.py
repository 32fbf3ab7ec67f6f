"""LinearStats on hand values: float32 sums of bfloat16 inputs, only the kinds asked for, an empty
batch, and the errors for statistics never collected. Mutants this kills: tests/MUTATION.md §6."""

from __future__ import annotations

import pytest
import torch

from prunekit.calibration.stats import HESSIAN, LARGE, SQ_NORM, LinearStats


def test_bfloat16_inputs_are_summed_in_float32():
    """Rows (16, 1) and (1, 16): Σx² = 16² + 1² = 257 per channel, which bfloat16 (8 significant
    bits) cannot hold (it rounds to 256); XᵀX = [[257, 32], [32, 257]]."""
    x = torch.tensor([[16.0, 1.0], [1.0, 16.0]], dtype=torch.bfloat16)
    s = LinearStats(frozenset({SQ_NORM, HESSIAN}))
    s.add(x)
    assert s.sq_sum.dtype == torch.float32 and s.xtx.dtype == torch.float32
    assert s.sq_sum.tolist() == [257.0, 257.0]
    assert s.xtx.tolist() == [[257.0, 32.0], [32.0, 257.0]]
    assert s.hessian.tolist() == [[257.0, 32.0], [32.0, 257.0]]  # 2 XᵀX / 2 tokens


def test_only_the_kinds_asked_for_are_accumulated():
    """A Wanda layer gets no d_in² XᵀX, a SparseGPT-only layer no Σx²."""
    x = torch.ones(3, 4)
    sq, hess = LinearStats(frozenset({SQ_NORM})), LinearStats(frozenset({HESSIAN}))
    sq.add(x)
    hess.add(x)
    assert sq.xtx is None and sq.sq_sum.tolist() == [3.0] * 4
    assert hess.sq_sum is None and hess.xtx.tolist() == [[3.0] * 4] * 4


def test_statistics_never_collected_are_one_clear_error():
    s = LinearStats(frozenset({SQ_NORM}))
    s.add(torch.ones(1, 2))
    with pytest.raises(ValueError, match="hessian statistics were not collected"):
        _ = s.hessian
    t = LinearStats(frozenset({HESSIAN}))
    t.add(torch.ones(1, 2))
    with pytest.raises(ValueError, match="sq_norm statistics were not collected"):
        _ = t.act_norm


def test_an_empty_batch_gives_zero_statistics_not_a_division_by_zero():
    """0 tokens: XᵀX is the 2 × 2 zero matrix and H = 2XᵀX / max(n, 1) is zero too."""
    s = LinearStats(frozenset({SQ_NORM, HESSIAN}))
    s.add(torch.empty(0, 2))
    assert s.tokens == 0
    assert s.hessian.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert s.act_norm.tolist() == [0.0, 0.0]


def test_only_the_hessian_is_too_large_to_hold_for_every_layer():
    """XᵀX is d_in² per Linear, Σx² only d_in: the dense-stream sweep refuses LARGE kinds."""
    assert HESSIAN in LARGE and SQ_NORM not in LARGE
