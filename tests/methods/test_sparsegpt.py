import pytest
import torch
from sparsegpt_reference import reference_sparsegpt

from prunekit.methods.masks import nm_mask, row_mask
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import SparseGPT
from prunekit.methods.scores import magnitude_scores, wanda_scores
from prunekit.methods.sparsegpt import sparsegpt_prune, sparsegpt_prune_group, tile_counts


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


def random_layer(d_out: int, d_in: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A weight and its Hessian 2XᵀX/n from correlated inputs."""
    x = correlated_inputs(256, d_in, seed)
    w = torch.randn(d_out, d_in, generator=torch.Generator().manual_seed(seed + 100))
    return w, 2 * x.T @ x / x.shape[0]


CASES = [
    (Pattern(), 0.5, 1),
    (Pattern(), 0.5, 5),
    (Pattern(), 0.7, 8),
    (Pattern(), 0.5, 16),
    (Pattern(), 0.5, 32),
    (Pattern(2, 4), 0.5, 4),
    (Pattern(2, 4), 0.5, 8),
    (Pattern(2, 4), 0.5, 12),
    (Pattern(4, 8), 0.5, 16),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("pattern", "sparsity", "blocksize"), CASES)
def test_blocked_sparsegpt_equals_the_naive_column_by_column_reference(
    pattern, sparsity, blocksize, seed
):
    """Tiles narrower than the width interact through the lazy cross-tile update; the result must
    still be the unblocked OBS sequence's, mask and weights."""
    w, h = random_layer(12, 32, seed)
    got, mask = sparsegpt_prune(w, h, sparsity, pattern, blocksize=blocksize)
    ref, ref_mask = reference_sparsegpt(w, h, sparsity, pattern, mask_block=blocksize)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("blocksize", [3, 8, 32])
def test_blocked_sparsegpt_equals_the_reference_with_per_row_sparsity(blocksize):
    w, h = random_layer(12, 32, 2)
    rows = torch.linspace(0.1, 0.8, 12)
    got, mask = sparsegpt_prune(w, h, rows, Pattern(), blocksize=blocksize)
    ref, ref_mask = reference_sparsegpt(w, h, rows, Pattern(), mask_block=blocksize)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pattern", [Pattern(2, 4), Pattern(4, 8)])
def test_nm_sparsegpt_prunes_n_in_every_group_whatever_the_block_size(pattern):
    """N:M masks are chosen group by group on the updated weights, so tiling cannot change them."""
    w, h = random_layer(12, 32, 3)
    results = [sparsegpt_prune(w, h, 0.5, pattern, blocksize=b) for b in (8, 16, 24, 32)]
    first, first_mask = results[0]
    groups = first_mask.reshape(12, 32 // pattern.m, pattern.m).sum(-1)
    assert bool((groups == pattern.n).all())
    assert bool((first[first_mask] == 0).all()) and bool((first[~first_mask] != 0).all())
    for got, mask in results[1:]:
        assert torch.equal(mask, first_mask)
        torch.testing.assert_close(got, first, rtol=0, atol=1e-5)


def test_pruning_a_prefix_of_a_row_refits_the_rest_optimally_across_tiles():
    """Brute force, no reference: a row whose pruned weights all come before its kept ones gets the
    exact least-squares refit of the kept weights (nested OBS projections), even when the pruned and
    kept weights sit in different tiles; a row whose pruned weights all come last keeps the rest as
    they were (nothing is left to compensate with)."""
    x = correlated_inputs(64, 6, 3)
    w = torch.randn(2, 6, generator=torch.Generator().manual_seed(4)).abs() + 1.0
    w[0, :3] = torch.tensor([0.01, -0.02, 0.015])  # row 0: tile 0 is pruned, tile 1 kept
    w[1, 3:] = torch.tensor([-0.01, 0.02, 0.01])  # row 1: tile 0 kept, tile 1 pruned
    h = 2 * x.T @ x / 64
    got, mask = sparsegpt_prune(w, h, 0.5, Pattern(), blocksize=3, percdamp=1e-9)
    expected_mask = torch.tensor([[True] * 3 + [False] * 3, [False] * 3 + [True] * 3])
    assert torch.equal(mask, expected_mask)
    target = x @ w[0]
    refit = torch.linalg.lstsq(x[:, 3:].double(), target[:, None].double()).solution[:, 0]
    torch.testing.assert_close(got[0, 3:].double(), refit, rtol=0, atol=1e-3)
    assert float((got[0, 3:] - w[0, 3:]).abs().min()) > 1e-3  # the refit really moved them
    torch.testing.assert_close(got[1, :3], w[1, :3])
    err_plain = output_error(w, w.masked_fill(mask, 0), x)
    assert output_error(w, got, x) < err_plain


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


def test_the_sparsegpt_pruner_uses_the_papers_128_column_tiles():
    """On a layer wider than one tile (2:4 groups must not straddle tiles), the pruner's default
    equals the reference at 128-column mask blocks."""
    w, h = random_layer(6, 264, 4)
    stats = type("Stats", (), {"hessian": h})()
    weight = w.clone()
    mask = SparseGPT().prune(weight, stats, 0.5, Pattern(2, 4))
    ref, ref_mask = reference_sparsegpt(w, h, 0.5, Pattern(2, 4), mask_block=128)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(weight.double(), ref, rtol=0, atol=1e-4)


def test_damping_grows_tenfold_until_the_hessian_is_positive_definite():
    """Eigenvalues 2.05 and −0.05 (mean diagonal 1): 1% damping leaves it indefinite, 10% does
    not, so the result is the reference's at 10%."""
    h = torch.tensor([[1.0, 1.05], [1.05, 1.0]])
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]])
    got, mask = sparsegpt_prune(w, h, 0.5, Pattern(), blocksize=2, percdamp=0.01)
    ref, ref_mask = reference_sparsegpt(w, h, 0.5, Pattern(), mask_block=2, percdamp=0.1)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("h", [-torch.eye(2), torch.tensor([[1.0, 5001.0], [5001.0, 1.0]])])
def test_a_hessian_that_six_tenfold_dampings_cannot_fix_is_an_error(h):
    """−I never becomes definite; eigenvalue −5000 would need 10⁴ × the mean diagonal (a 7th try)."""
    with pytest.raises(
        RuntimeError, match="^Hessian is not positive definite even with heavy damping$"
    ):
        sparsegpt_prune(torch.ones(2, 2), h, 0.5, Pattern(), blocksize=2)


@pytest.mark.parametrize("pattern", [Pattern(), Pattern(2, 4)])
def test_a_group_sharing_one_hessian_is_each_weight_pruned_on_its_own(pattern):
    """q/k/v-like weights of different heights and targets (scalar, per-row) stacked into one
    column loop: each weight's mask is its solo run's, its weights equal up to float rounding
    (BLAS may block a taller matrix differently)."""
    x = correlated_inputs(256, 48, 3)
    h = 2 * x.T @ x / x.shape[0]
    g = torch.Generator().manual_seed(4)
    weights = [torch.randn(rows, 48, generator=g) for rows in (20, 8, 8)]
    per_row = torch.linspace(0.2, 0.8, 8)
    targets = [0.5, per_row, 0.3]
    group = sparsegpt_prune_group(weights, h, targets, pattern, blocksize=16)
    for w, t, (w_g, m_g) in zip(weights, targets, group):
        w_solo, m_solo = sparsegpt_prune(w, h, t, pattern, blocksize=16)
        assert torch.equal(m_g, m_solo)
        torch.testing.assert_close(w_g, w_solo, rtol=1e-5, atol=1e-5)
    if not pattern.is_nm:  # a scalar target chooses within its own weight, not across the group
        assert [float(m.float().mean()) for _, m in group][::2] == [
            0.5,
            pytest.approx(0.3, abs=1e-2),
        ]
