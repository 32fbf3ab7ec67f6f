import itertools

import pytest
import torch

from prunekit.methods.masks import nm_mask, row_mask
from prunekit.methods.patterns import Pattern
from prunekit.methods.scores import magnitude_scores, wanda_scores
from prunekit.methods.sparsegpt import sparsegpt_prune, tile_counts


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


@pytest.mark.parametrize("blocksize", [3, 8, 64])
def test_sparsegpt_awkward_per_row_targets_are_exact_across_column_tiles(blocksize):
    """Per-tile ⌊128·s_r⌋ would lose up to one weight per row per tile; counts must be exact."""
    x = correlated_inputs(128, 20, 7)
    w = torch.randn(5, 20)
    k = torch.tensor([3, 7, 11, 13, 19])
    _, mask = sparsegpt_prune(w, 2 * x.T @ x / 128, k / 20, Pattern(), blocksize=blocksize)
    assert mask.sum(1).tolist() == k.tolist()
    for i1 in range(0, 20, blocksize):  # spread evenly: each tile within one of its pro-rata share
        i2 = min(i1 + blocksize, 20)
        share = k * (i2 - i1) / 20
        assert ((mask[:, i1:i2].sum(1) - share).abs() < 1).all()


def test_tile_counts_add_up_to_the_row_count_for_any_tiling():
    g = torch.Generator().manual_seed(0)
    for d_in in (1, 7, 20, 129):
        counts = torch.randint(0, d_in + 1, (50,), generator=g)
        for blocksize in (1, 3, 8, 128):
            tiles = [
                tile_counts(counts, i, min(i + blocksize, d_in), d_in)
                for i in range(0, d_in, blocksize)
            ]
            assert torch.equal(sum(tiles), counts)
            assert all(((t >= 0) & (t <= min(blocksize, d_in))).all() for t in tiles)
