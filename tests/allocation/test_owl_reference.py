"""OWL through the engine against a brute-force computation from full dense forward passes."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import tiny_model
from prunekit.api import prune
from prunekit.models.adapters import adapter_for

IDS = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(0))


def brute_force_ratios(model, m: float) -> list[float]:
    """o_b: share of |W_ij|·‖X_j‖ over all Linears of block b that exceed m × their pooled mean."""
    adapter = adapter_for(model)
    linears = [adapter.linears(layer) for layer in adapter.layers(model)]
    sq = {(b, n): 0.0 for b, lins in enumerate(linears) for n in lins}
    hooks = []
    for b, lins in enumerate(linears):
        for n, lin in lins.items():

            def hook(_m, inputs, _o, key=(b, n)):
                sq[key] = sq[key] + inputs[0].double().pow(2).sum(dim=(0, 1))

            hooks.append(lin.register_forward_hook(hook))
    with torch.no_grad():
        for batch in IDS.split(4):
            model(batch)
    for h in hooks:
        h.remove()
    ratios = []
    for b, lins in enumerate(linears):
        scores = torch.cat(
            [(lin.weight.double().abs() * sq[b, n].sqrt()).flatten() for n, lin in lins.items()]
        )
        ratios.append(float((scores > m * scores.mean()).double().mean()))
    return ratios


@pytest.mark.parametrize(("m", "lam"), [(5.0, 0.08), (3.0, 0.2)])
def test_owl_ratios_and_block_sparsity_equal_a_brute_force_computation(m, lam):
    model = tiny_model("qwen2")
    expected = brute_force_ratios(copy.deepcopy(model), m)
    assert max(expected) > min(expected) > 0  # the normalisation below is not degenerate
    report = prune(
        model,
        None,
        method="wanda",
        sparsity=0.5,
        calib=IDS,
        seq_len=24,
        batch_size=4,
        progress=False,
        allocation="owl",
        allocation_options={"m": m, "lambda": lam},
    ).report["allocation"]
    assert report["outlier_ratio"] == pytest.approx(expected, abs=1e-9)
    o = torch.tensor(expected, dtype=torch.float64)
    norm = (o - o.min()) / (o.max() - o.min())
    blocks = 0.5 - 2 * lam * norm + 2 * lam * norm.mean()  # equal block sizes, nothing clipped
    assert report["block_sparsity"] == pytest.approx(blocks.tolist(), abs=1e-3)
    adapter = adapter_for(model)
    for b, layer in enumerate(adapter.layers(model)):
        weights = [lin.weight for lin in adapter.linears(layer).values()]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert zeros == pytest.approx(float(blocks[b]), abs=1e-3)
