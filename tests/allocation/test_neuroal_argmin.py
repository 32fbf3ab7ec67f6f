"""NeuroAL picks the λ whose logged objective is lowest, and the model is pruned at that λ's plan."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunekit.api import prune
from prunekit.models.adapters import adapter_for

IDS = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(0))
BLOCK_LAMBDAS = [0.02, 0.04, 0.1, 0.12, 0.15, 0.2]  # the winner (0.15) is evaluated 5th of 6


def run(**options):
    opts = {"samples": 8, "bound": False, "block_lambdas": BLOCK_LAMBDAS, **options}
    return prune(
        tiny_model("qwen2"),
        None,
        method="wanda",
        sparsity=0.5,
        calib=IDS,
        seq_len=24,
        batch_size=4,
        progress=False,
        allocation="neuroal",
        allocation_options=opts,
    )


def argmin(candidates: list[dict]) -> float:
    assert all(c["complete"] for c in candidates)  # bound=False: every objective is exact
    objectives = [c["objective"] for c in candidates]
    assert len(set(objectives)) == len(objectives), "ties would make the argmin ambiguous"
    return min(candidates, key=lambda c: c["objective"])["lambda"]


def layer_zeros(model) -> list[list[torch.Tensor]]:
    """Zeros per row of every Linear, block by block."""
    adapter = adapter_for(model)
    return [
        [(lin.weight == 0).sum(1) for lin in adapter.linears(layer).values()]
        for layer in adapter.layers(model)
    ]


def layer_widths(model) -> list[list[int]]:
    adapter = adapter_for(model)
    return [
        [lin.in_features for lin in adapter.linears(layer).values()]
        for layer in adapter.layers(model)
    ]


def test_block_step_chooses_the_argmin_and_prunes_at_its_ramp():
    result = run(row_step=False)
    step = result.report["allocation"]["search"]["block_step"]
    assert [c["lambda"] for c in step["candidates"]] == BLOCK_LAMBDAS
    lam = argmin(step["candidates"])
    assert step["chosen_lambda"] == lam
    zeros = layer_zeros(result.model)
    num_blocks = len(zeros)
    widths = layer_widths(result.model)
    for b, counts in enumerate(zeros):  # s_b = s − λ + 2λb/(B−1): no clipping at s = 0.5
        s_b = 0.5 - lam + 2 * lam * b / (num_blocks - 1)
        for c, d_in in zip(counts, widths[b]):
            assert int(c.sum()) == round(c.numel() * d_in * s_b), (b, lam)


def test_row_step_chooses_the_argmin_over_its_candidates_and_the_block_winner():
    result = run(row_lambdas=[0.0, 0.05, 0.25])
    search = result.report["allocation"]["search"]
    block, row = search["block_step"], search["row_step"]
    assert block["chosen_lambda"] == argmin(block["candidates"])
    assert row["candidates"][0]["objective"] == pytest.approx(
        min(c["objective"] for c in block["candidates"])
    )  # λ=0 is the block step's winner, not re-evaluated
    lam = argmin(row["candidates"])
    assert row["chosen_lambda"] == lam
    assert search["objective"] == pytest.approx(min(c["objective"] for c in row["candidates"]))
    rows_vary = [bool(c.min() < c.max()) for counts in layer_zeros(result.model) for c in counts]
    assert any(rows_vary) == (lam > 0)
