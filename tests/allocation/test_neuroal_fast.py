"""NeuroAL search speed-ups: the exact path chooses the same λs as the full-pass engine did, and
the cached dense reference computes its (different) objective correctly at fewer forwards."""

from __future__ import annotations

import pytest
import torch

from conftest import linear_input_norms, tiny_model
from prunekit.allocation.alignment import alignment_term, ranked_prune, score_ranks
from prunekit.allocation.neuroal import SearchSettings, neuroal_search, ramp_sparsity
from prunekit.allocation.plan import block_sizes, layer_shapes, make_plan
from prunekit.api import prune
from prunekit.calibration.context import RunContext
from prunekit.calibration.engine import BlockContext, hooked_forward
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import get_pruner
from prunekit.models.adapters import adapter_for

IDS = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(5))


def _full_pass_collect(self, kinds, names=None, pass_on=False):
    """collect() before truncation: a whole forward with hooks, outputs dropped."""
    names = list(self.linears) if names is None else list(names)
    linears = {n: self.linears[n] for n in names}
    stats, outputs = hooked_forward(linears, kinds, self.forward, self.input_groups)
    if pass_on:
        self.outputs = outputs
    return stats


def _search(arch: str, **options) -> dict:
    result = prune(
        tiny_model(arch, seed=3),
        None,
        method="wanda",
        sparsity=0.6,
        calib=IDS,
        seq_len=24,
        batch_size=4,
        progress=False,
        allocation="neuroal",
        allocation_options={"samples": 8, **options},
    )
    return result.report["allocation"]["search"]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_exact_search_chooses_the_same_lambdas_and_objectives_as_the_full_pass_engine(
    monkeypatch, arch
):
    """Published full grid, bound on: every candidate's objective and both chosen λs unchanged."""
    after = _search(arch)
    with monkeypatch.context() as m:
        m.setattr(BlockContext, "collect", _full_pass_collect)
        before = _search(arch)
    for step in ("block_step", "row_step"):
        assert after[step]["chosen_lambda"] == before[step]["chosen_lambda"]
        assert after[step]["candidates"] == before[step]["candidates"]
    assert after["objective"] == before["objective"]
    assert (
        len(after["block_step"]["candidates"]) == 14 and len(after["row_step"]["candidates"]) == 15
    )


def test_cached_reference_objective_equals_dense_model_vs_masked_model_norms():
    """Cached: Σ m(a of the dense model, a of the masked model), each from its own whole forward."""
    model = tiny_model("qwen2", seed=3)
    adapter = adapter_for(model)
    run = RunContext(model, adapter, list(IDS.split(4)), progress=False)
    shapes = layer_shapes(model, adapter)
    settings = SearchSettings(row_step=False, block_lambdas=(0.1,), bound=False)
    blocks = ramp_sparsity(3, 0.6, 0.1, block_sizes(shapes))
    plan = make_plan(shapes, blocks)
    # the search with two candidates so that it runs; read the 0.1 candidate
    two = SearchSettings(
        row_step=False, block_lambdas=(0.1, 0.2), bound=False, dense_reference="cached"
    )
    _, log = neuroal_search(run, get_pruner("wanda"), UNSTRUCTURED, shapes, 0.6, two)
    got = next(c["objective"] for c in log["block_step"]["candidates"] if c["lambda"] == 0.1)
    assert log["dense_reference"] == "cached"

    dense = linear_input_norms(model, IDS)
    ranks = score_ranks(run, get_pruner("wanda"))
    masked = tiny_model("qwen2", seed=3)
    mask_fn = ranked_prune(ranks, plan.target)
    for i, layer in enumerate(adapter.layers(masked)):
        for n, lin in adapter.linears(layer).items():
            mask_fn(i, n, lin.weight.data, None)
    sparse = linear_input_norms(masked, IDS)
    want = sum(alignment_term(dense[k], sparse[k]) for k in dense)
    assert got == pytest.approx(want, rel=1e-4)
    assert settings.dense_reference == "stream"  # default stays the exact published search


def test_cached_reference_runs_one_block_forward_per_candidate_block():
    """Stream reference: a truncated dense pass + a masked pass per block; cached: the masked one."""
    model = tiny_model("llama", seed=3)
    adapter = adapter_for(model)
    starts: list[str] = []
    for layer in adapter.layers(model):
        layer.register_forward_pre_hook(lambda *_a: starts.append("block"))
    run = RunContext(model, adapter, list(IDS.split(4)), progress=False)
    shapes = layer_shapes(model, adapter)
    counts = {}
    for ref in ("stream", "cached"):
        starts.clear()
        opts = SearchSettings(
            row_step=False, block_lambdas=(0.05, 0.1, 0.2), bound=False, dense_reference=ref
        )
        neuroal_search(run, get_pruner("wanda"), UNSTRUCTURED, shapes, 0.6, opts)
        counts[ref] = len(starts)
    blocks, batches, cands = 3, 2, 3
    capture = blocks * batches  # stand-ins count as starts too, once per engine run
    scoring = capture + blocks * batches
    per_candidate = capture + blocks * batches
    assert counts["cached"] == scoring + cands * per_candidate
    assert counts["stream"] == scoring + cands * (per_candidate + blocks * batches)
