"""The scoring pass of the fast search for a scorer that needs no statistics (magnitude): its
ranks, and the dense input norms the cached reference reads, against a brute-force forward.
Mutants this kills: tests/MUTATION.md §5."""

from __future__ import annotations

import torch

from conftest import tiny_model
from prunekit.allocation.alignment import score_ranks
from prunekit.calibration.context import RunContext
from prunekit.methods.pruners import Magnitude
from prunekit.models.adapters import adapter_for

IDS = torch.randint(0, 128, (4, 12), generator=torch.Generator().manual_seed(1))


def _input_norms(model) -> dict[str, torch.Tensor]:
    """‖x_j‖₂ over every token of IDS, per input channel of every decoder Linear."""
    adapter = adapter_for(model)
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(adapter.layers(model)):
        for n, lin in adapter.linears(layer).items():

            def hook(_m, inp, key=f"layers.{i}.{n}"):
                x = inp[0].reshape(-1, inp[0].shape[-1]).double().pow(2).sum(0)
                sums[key] = sums[key] + x if key in sums else x

            handles.append(lin.register_forward_pre_hook(hook))
    with torch.no_grad():
        for batch in IDS.split(2):
            model(batch)
    for h in handles:
        h.remove()
    return {k: v.sqrt() for k, v in sums.items()}


def test_magnitude_ranks_and_the_cached_dense_norms_by_brute_force():
    """Magnitude needs no statistics, but the cached reference still needs a^dense from the pass."""
    model = tiny_model("llama")
    adapter = adapter_for(model)
    want = _input_norms(model)
    dense: dict[str, torch.Tensor] = {}
    run = RunContext(model, adapter, list(IDS.split(2)), progress=False)
    ranks = score_ranks(run, Magnitude(), dense)
    assert set(dense) == set(want) == set(ranks)
    for key, norms in want.items():
        assert torch.allclose(dense[key].double().cpu(), norms, rtol=1e-5, atol=0), key
    for i, layer in enumerate(adapter.layers(model)):
        for n, lin in adapter.linears(layer).items():
            a = lin.weight.detach().abs()  # no ties among random floats
            below = (a[:, None, :] < a[:, :, None]).sum(-1)  # how many of its row are smaller
            assert torch.equal(ranks[f"layers.{i}.{n}"].long(), below), (i, n)
