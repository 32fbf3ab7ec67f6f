"""The scoring pass of the fast search for a scorer that needs no statistics (magnitude): its
ranks, and the dense input norms the cached reference reads, against a brute-force forward.
Mutants this kills: tests/MUTATION.md §5."""

from __future__ import annotations

import torch

from conftest import linear_input_norms, tiny_model
from prunekit.allocation.alignment import score_ranks
from prunekit.calibration.context import RunContext
from prunekit.methods.pruners import Magnitude
from prunekit.models.adapters import adapter_for

IDS = torch.randint(0, 128, (4, 12), generator=torch.Generator().manual_seed(1))


def test_magnitude_ranks_and_the_cached_dense_norms_by_brute_force():
    """Magnitude needs no statistics, but the cached reference still needs a^dense from the pass."""
    model = tiny_model("llama")
    adapter = adapter_for(model)
    want = linear_input_norms(model, IDS)
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
