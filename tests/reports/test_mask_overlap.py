import pytest
import torch

from prunekit.reports.mask_overlap import (
    intersection_union,
    jaccard,
    pair_overlap,
    random_jaccard,
)


def _brute_jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    sa = {i for i, v in enumerate(a.flatten().tolist()) if v}
    sb = {i for i, v in enumerate(b.flatten().tolist()) if v}
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def test_jaccard_matches_sets_on_small_random_masks():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = torch.rand(5, 7, generator=g) < 0.4
        b = torch.rand(5, 7, generator=g) < 0.6
        assert jaccard(a, b) == pytest.approx(_brute_jaccard(a, b))
    e = torch.zeros(3, 3, dtype=torch.bool)
    assert jaccard(e, e) == 1.0
    assert intersection_union(e, ~e) == (0, 9)


def test_random_expectation_by_simulation():
    """Independent masks with exactly s·n pruned weights overlap s/(2−s) on average."""
    g = torch.Generator().manual_seed(1)
    n = 4000
    for s in (0.3, 0.5, 0.7):
        k = int(s * n)
        values = []
        for _ in range(200):
            a = torch.zeros(n, dtype=torch.bool)
            b = torch.zeros(n, dtype=torch.bool)
            a[torch.randperm(n, generator=g)[:k]] = True
            b[torch.randperm(n, generator=g)[:k]] = True
            values.append(jaccard(a, b))
        assert sum(values) / len(values) == pytest.approx(random_jaccard(s), abs=0.005)
    assert random_jaccard(0.5) == pytest.approx(1 / 3)


def test_pair_overlap_aggregates_like_brute_force():
    g = torch.Generator().manual_seed(2)
    keys = [f"layers.{i}.{p}" for i in range(3) for p in ("self_attn.q_proj", "mlp.down_proj")]
    shapes = {"self_attn.q_proj": (4, 6), "mlp.down_proj": (6, 8)}
    a = {k: torch.rand(shapes[k.split(".", 2)[2]], generator=g) < 0.5 for k in keys}
    b = {k: torch.rand(shapes[k.split(".", 2)[2]], generator=g) < 0.5 for k in keys}
    res = pair_overlap(a, b, 0.5)

    def cat(ks, m):
        return torch.cat([m[k].flatten() for k in ks])

    assert res["overall"] == pytest.approx(_brute_jaccard(cat(keys, a), cat(keys, b)))
    for i in range(3):
        ks = [k for k in keys if k.startswith(f"layers.{i}.")]
        assert res["by_block"][i] == pytest.approx(_brute_jaccard(cat(ks, a), cat(ks, b)))
    for p in shapes:
        ks = [k for k in keys if k.endswith(p)]
        assert res["by_projection"][p] == pytest.approx(_brute_jaccard(cat(ks, a), cat(ks, b)))
    for k in keys:
        assert res["by_layer"][k] == pytest.approx(_brute_jaccard(a[k], b[k]))
    assert res["random_expectation"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        pair_overlap(a, {k: v for k, v in b.items() if k != keys[0]}, 0.5)
