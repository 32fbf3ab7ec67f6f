"""SparseGPT through the one-shot engine against the naive reference applied layer by layer to
inputs from full forward passes of the partly pruned model."""

import copy

import pytest
import torch
from sparsegpt_reference import reference_sparsegpt

from conftest import tiny_model
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import SparseGPT
from prunekit.models.adapters import adapter_for


def block_inputs(model, linears, batches) -> dict[str, torch.Tensor]:
    """Every token's input row to each Linear of one block, from full forward passes."""
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in linears}
    hooks = [
        lin.register_forward_hook(
            lambda _m, i, _o, n=n: rows[n].append(i[0].reshape(-1, i[0].shape[-1]).double())
        )
        for n, lin in linears.items()
    ]
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    return {n: torch.cat(r) for n, r in rows.items()}


def reference_model(model, batches, pattern, blocksize) -> dict[str, torch.Tensor]:
    """Prune block by block with the naive reference; return each layer's calibration inputs."""
    adapter = adapter_for(model)
    inputs = {}
    for i, layer in enumerate(adapter.layers(model)):
        linears = adapter.linears(layer)
        xs = block_inputs(model, linears, batches)
        for n, lin in linears.items():
            h = 2 * xs[n].T @ xs[n] / xs[n].shape[0]
            new, _ = reference_sparsegpt(lin.weight.data, h, 0.5, pattern, mask_block=blocksize)
            lin.weight.data.copy_(new.float())
            inputs[f"{i}.{n}"] = xs[n]
    return inputs


@pytest.mark.parametrize("pattern", [Pattern(), Pattern(2, 4)])
def test_engine_sparsegpt_equals_the_naive_reference_layer_by_layer(pattern):
    """Tiles of 16 columns on 32/64-wide layers interact; surviving weights must move (a version
    that only masks would pass a zero count) and every layer's output error must be the reference's."""
    model = tiny_model("llama")
    dense = copy.deepcopy(model)
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 128, (2, 16), generator=g) for _ in range(2)]
    adapter = adapter_for(model)
    prune_model(
        model, adapter, SparseGPT(blocksize=16), lambda *_: 0.5, pattern, batches, progress=False
    )
    inputs = reference_model(ref, batches, pattern, blocksize=16)
    for i, (layer, ref_layer, dense_layer) in enumerate(
        zip(adapter.layers(model), adapter.layers(ref), adapter.layers(dense))
    ):
        ref_linears, dense_linears = adapter.linears(ref_layer), adapter.linears(dense_layer)
        for n, lin in adapter.linears(layer).items():
            w, w_ref, w0 = lin.weight.data, ref_linears[n].weight.data, dense_linears[n].weight.data
            assert torch.equal(w == 0, w_ref == 0), f"{i}.{n} mask"
            torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-4, msg=f"{i}.{n} weights")
            kept = w != 0
            assert float((w[kept] - w0[kept]).abs().mean()) > 1e-3, f"{i}.{n} kept weights moved"
            x = inputs[f"{i}.{n}"]
            err = (x @ (w0 - w).double().T).pow(2).sum()
            err_ref = (x @ (w0 - w_ref).double().T).pow(2).sum()
            torch.testing.assert_close(err, err_ref, rtol=1e-3, atol=0, msg=f"{i}.{n} error")
            if pattern.is_nm:
                groups = (w == 0).reshape(w.shape[0], -1, pattern.m).sum(-1)
                assert bool((groups == pattern.n).all()), f"{i}.{n} 2:4 groups"
