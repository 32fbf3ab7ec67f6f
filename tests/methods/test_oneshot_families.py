"""The one-shot engine on Qwen3 (q/k norms, explicit head_dim) and Mistral equals the naive
sequential reference of test_oneshot.py."""

import copy

import pytest
import torch
from test_oneshot import reference_wanda

from conftest import tiny_model
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Wanda
from prunekit.models.adapters import adapter_for


@pytest.mark.parametrize("arch", ["qwen3", "mistral"])
def test_engine_wanda_equals_the_naive_reference(arch):
    model = tiny_model(arch)
    ref = copy.deepcopy(model)
    batches = list(
        torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0)).split(2)
    )
    adapter = adapter_for(model)
    prune_model(model, adapter, Wanda(), lambda *_: 0.5, Pattern(), batches, progress=False)
    reference_wanda(ref, batches, 0.5)
    pruned = 0
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a == 0, b == 0), name
        pruned += int((a == 0).sum())
    linears = [lin for layer in adapter.layers(model) for lin in adapter.linears(layer).values()]
    assert len(linears) == 3 * 7
    assert pruned == sum(lin.weight.numel() // 2 for lin in linears)
