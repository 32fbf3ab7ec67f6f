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
