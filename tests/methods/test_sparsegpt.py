import itertools

import pytest
import torch

from prunekit.methods.masks import nm_mask, row_mask
from prunekit.methods.patterns import Pattern
from prunekit.methods.scores import magnitude_scores, wanda_scores
from prunekit.methods.sparsegpt import sparsegpt_prune


def correlated_inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """Inputs with unequal channel scales and correlations, as in real activations."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    scale = torch.exp(torch.randn(d, generator=g))
    return (torch.randn(n, d, generator=g) @ mix) * scale


def output_error(w: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    return float((x @ (w - w_hat).T).pow(2).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("pattern", [Pattern(), Pattern(2, 4)])
def test_sparsegpt_beats_wanda_and_magnitude_on_layer_output_error(seed, pattern):
    d_out, d_in = 24, 32
    x = correlated_inputs(512, d_in, seed)
    w = torch.randn(d_out, d_in, generator=torch.Generator().manual_seed(seed + 10))
    h = 2 * x.T @ x / x.shape[0]
    w_sgpt, mask = sparsegpt_prune(w, h, 0.5, pattern, blocksize=16)
    assert torch.equal(w_sgpt == 0, mask) or bool((w_sgpt[mask] == 0).all())
    assert abs(float(mask.float().mean()) - 0.5) < 1e-9

    def masked(scores):
        m = nm_mask(scores, 2, 4) if pattern.is_nm else row_mask(scores, 0.5)
        return w.masked_fill(m, 0)

    err_sgpt = output_error(w, w_sgpt, x)
    err_wanda = output_error(w, masked(wanda_scores(w, x.pow(2).sum(0).sqrt())), x)
    err_mag = output_error(w, masked(magnitude_scores(w)), x)
    assert err_sgpt < err_wanda
    assert err_sgpt < err_mag


def test_sparsegpt_update_lies_between_best_refit_and_plain_masking():
    """Brute force on a tiny row: for SparseGPT's own mask, its error is no better than the optimal
    least-squares refit of the kept weights and no worse than zeroing without any update."""
    x = correlated_inputs(64, 6, 3)
    w = torch.randn(1, 6, generator=torch.Generator().manual_seed(4))
    h = 2 * x.T @ x / 64
    w_sgpt, mask = sparsegpt_prune(w, h, 0.5, Pattern(), blocksize=6, percdamp=1e-6)
    keep = ~mask[0]
    target = x @ w[0]
    sol = torch.linalg.lstsq(x[:, keep], target[:, None]).solution[:, 0]
    refit = torch.zeros(6)
    refit[keep] = sol
    err_best = output_error(w, refit[None], x)
    err_plain = output_error(w, w.masked_fill(mask, 0), x)
    err_sgpt = output_error(w, w_sgpt, x)
    assert err_best <= err_sgpt + 1e-4
    assert err_sgpt < err_plain
    # and the best possible 3-of-6 mask with refit is a lower bound on everything
    best_any = min(
        float(
            (
                x[:, list(c)] @ torch.linalg.lstsq(x[:, list(c)], target[:, None]).solution[:, 0]
                - target
            )
            .pow(2)
            .sum()
        )
        for c in itertools.combinations(range(6), 3)
    )
    assert best_any <= err_best + 1e-4


def test_sparsegpt_zero_sparsity_keeps_weights():
    x = correlated_inputs(128, 16, 5)
    w = torch.randn(8, 16)
    w_new, mask = sparsegpt_prune(w, 2 * x.T @ x / 128, 0.0, Pattern(), blocksize=8)
    assert not mask.any()
    torch.testing.assert_close(w_new, w)


def test_sparsegpt_per_row_sparsity():
    x = correlated_inputs(128, 16, 6)
    w = torch.randn(4, 16)
    s = torch.tensor([0.25, 0.5, 0.5, 0.75])
    _, mask = sparsegpt_prune(w, 2 * x.T @ x / 128, s, Pattern(), blocksize=8)
    assert mask.sum(1).tolist() == [4, 8, 8, 12]
