import torch

from prunekit.calibration.stats import HESSIAN, SQ_NORM, LinearStats


def test_statistics_stay_float32_inside_a_bfloat16_autocast():
    """Hooks run inside the forwards' autocast; XᵀX must not become a bfloat16 matmul there."""
    torch.manual_seed(0)
    x = torch.randn(2, 64, 48)
    plain, cast = (
        LinearStats(frozenset({SQ_NORM, HESSIAN})),
        LinearStats(frozenset({SQ_NORM, HESSIAN})),
    )
    plain.add(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast.add(x)
    assert cast.xtx.dtype == torch.float32
    assert torch.equal(cast.xtx, plain.xtx)
    assert torch.equal(cast.sq_sum, plain.sq_sum)
    flat = x.reshape(-1, 48).double()
    assert torch.allclose(plain.xtx.double(), flat.T @ flat, rtol=1e-5, atol=1e-4)


def test_wide_inputs_accumulate_xtx_by_bands_and_read_it_whole():
    """Above 512 columns only the bands right of the diagonal are multiplied; reading `xtx`
    between batches (mirroring in place) must not disturb the sums that follow."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(3, 40, 600, generator=g) for _ in range(3)]
    s = LinearStats(frozenset({HESSIAN}))
    s.add(batches[0])
    first = s.xtx.clone()
    for b in batches[1:]:
        s.add(b)
    flat = torch.cat([b.reshape(-1, 600) for b in batches]).double()
    assert torch.equal(s.xtx, s.xtx.T)
    torch.testing.assert_close(s.xtx.double(), flat.T @ flat, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(first.double(), flat[:120].T @ flat[:120], rtol=1e-5, atol=1e-3)
