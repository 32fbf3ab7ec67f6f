import itertools

import pytest
import torch

from prunekit.methods.masks import kth_smallest, lowest_k, nm_mask, row_mask, zero_masked_
from prunekit.methods.scores import magnitude_scores, wanda_scores


def brute_row_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k-subset of each row with the smallest total score, by enumeration."""
    out = torch.zeros_like(scores, dtype=torch.bool)
    for r in range(scores.shape[0]):
        best = min(
            itertools.combinations(range(scores.shape[1]), k),
            key=lambda c: float(scores[r, list(c)].sum()),
        )
        out[r, list(best)] = True
    return out


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.75])
def test_row_mask_matches_brute_force(sparsity):
    torch.manual_seed(0)
    scores = torch.rand(5, 8)
    k = int(8 * sparsity)
    assert torch.equal(row_mask(scores, sparsity), brute_row_mask(scores, k))


def _topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(1, torch.topk(scores, k, dim=1, largest=False).indices, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("k", [0, 1, 7, 32, 63, 64])
def test_lowest_k_is_the_top_k_mask_with_ties_and_nan(k, dtype):
    """numpy's selection (float32/64) and torch's (bfloat16) give top-k's mask."""
    torch.manual_seed(0)
    scores = torch.rand(13, 64, dtype=torch.float64)
    scores[1] = 0.5  # a whole row tied
    scores[2, 10:40] = scores[2, 5]  # ties straddling the k-th value for most k
    scores[3, :20] = 0.0  # already-pruned weights: ties at zero
    scores[3, 20:24] = -0.0
    scores[4, 7] = float("nan")
    scores[12, 24:] = float("nan")  # the k-th value itself is NaN for k > 24
    scores = scores.to(dtype)
    mask = lowest_k(scores, k)
    assert torch.equal(mask, _topk_mask(scores, k))
    assert torch.equal(mask.sum(1), torch.full((13,), k))
    if dtype != torch.bfloat16:  # bfloat16 rounding makes ties of distinct draws
        plain = scores[5:12]  # no ties: the k lowest by brute force
        assert torch.equal(lowest_k(plain, k), plain.argsort(1).argsort(1) < k)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.bfloat16])
def test_kth_smallest_is_kthvalue(dtype):
    scores = torch.randn(9, 37, generator=torch.Generator().manual_seed(1)).to(dtype)
    for k in (1, 18, 37):
        want = torch.kthvalue(scores, k, dim=1, keepdim=True).values
        assert torch.equal(kth_smallest(scores, k), want)
        assert torch.equal(kth_smallest(scores.T.contiguous().T, k), want)  # strided rows


def test_row_mask_per_row_sparsity():
    torch.manual_seed(1)
    scores = torch.rand(4, 10)
    s = torch.tensor([0.0, 0.3, 0.5, 0.9])
    mask = row_mask(scores, s)
    assert mask.sum(1).tolist() == [0, 3, 5, 9]
    for r, k in enumerate([0, 3, 5, 9]):
        assert torch.equal(mask[r], brute_row_mask(scores[r : r + 1], k)[0])


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_matches_brute_force(n, m):
    torch.manual_seed(2)
    scores = torch.rand(3, 16)
    mask = nm_mask(scores, n, m)
    for r in range(3):
        for g in range(0, 16, m):
            block = scores[r : r + 1, g : g + m]
            assert torch.equal(mask[r, g : g + m], brute_row_mask(block, n)[0])
    assert mask.float().mean() == n / m


def test_nm_mask_rejects_ragged_width():
    with pytest.raises(ValueError, match="input width 6 is not a multiple of M=4"):
        nm_mask(torch.rand(2, 6), 2, 4)


def test_wanda_scores_weight_by_input_norm():
    w = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    a = torch.tensor([2.0, 1.0])
    assert torch.equal(wanda_scores(w, a), torch.tensor([[2.0, 2.0], [6.0, 0.5]]))
    assert torch.equal(magnitude_scores(w), w.abs())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_zero_masked_is_masked_fill_bit_for_bit(dtype):
    """Kept NaN, inf and -0 keep their bits, pruned ones become +0, also on a transposed view."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 10, generator=g).to(dtype)
    w[0, :3] = -0.0
    w[1, :3] = float("nan")
    w[2, :3] = float("-inf")
    mask = torch.rand(12, 10, generator=g) < 0.5
    mask[:3, 0], mask[:3, 1] = True, False
    for weight, m in ((w, mask), (w.T, mask.T)):
        want = weight.clone().masked_fill_(m, 0)
        got = weight.clone()
        assert zero_masked_(got, m) is got
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[w.element_size()]
        assert torch.equal(got.view(bits), want.view(bits))
        assert got.view(bits)[m].eq(0).all()  # +0 exactly, not -0
    strided = w.T.clone().T  # non-contiguous storage order, same values
    assert torch.equal(
        zero_masked_(strided, mask).view(bits), w.clone().masked_fill_(mask, 0).view(bits)
    )
