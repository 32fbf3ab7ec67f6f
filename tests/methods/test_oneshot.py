"""The one-shot pipeline against a naive reference: Wanda statistics of block i come from a full
forward pass of the model whose blocks < i are already pruned."""

import copy

import torch

from conftest import tiny_model
from prunekit.methods.masks import row_mask
from prunekit.methods.oneshot import prune_model
from prunekit.methods.patterns import Pattern
from prunekit.methods.pruners import Magnitude, Wanda
from prunekit.methods.scores import wanda_scores
from prunekit.models.adapters import adapter_for


def reference_wanda(model, batches, sparsity):
    """Prune block by block, re-running the whole model each time to get each block's inputs."""
    adapter = adapter_for(model)
    for layer in adapter.layers(model):
        linears = adapter.linears(layer)
        sums = {n: torch.zeros(lin.in_features) for n, lin in linears.items()}

        def hook(_module, inputs, _output, n, sums=sums):
            sums[n].add_(inputs[0].reshape(-1, inputs[0].shape[-1]).pow(2).sum(0))

        hooks = [
            lin.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
            for n, lin in linears.items()
        ]
        with torch.no_grad():
            for b in batches:
                model(b)
        for h in hooks:
            h.remove()
        for n, lin in linears.items():
            mask = row_mask(wanda_scores(lin.weight.data, sums[n].sqrt()), sparsity)
            lin.weight.data.masked_fill_(mask, 0)


def test_engine_wanda_equals_naive_sequential_reference():
    model = tiny_model("qwen2")
    ref = copy.deepcopy(model)
    torch.manual_seed(0)
    batches = [torch.randint(0, 128, (2, 16)) for _ in range(2)]
    records = prune_model(
        model, adapter_for(model), Wanda(), lambda *_: 0.5, Pattern(), batches, progress=False
    )
    reference_wanda(ref, batches, 0.5)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a == 0, b == 0), name
    assert len(records) == 3 * 7
    assert all(abs(r.sparsity - 0.5) < 1e-9 for r in records.values())


def test_magnitude_needs_no_data_and_respects_per_row_targets():
    model = tiny_model("llama")
    rows = torch.linspace(0.0, 0.75, 64)

    def target(block, name, weight):
        return rows[: weight.shape[0]] if name == "mlp.gate_proj" else 0.25

    records = prune_model(
        model, adapter_for(model), Magnitude(), target, Pattern(), None, progress=False
    )
    gate = adapter_for(model).layers(model)[0].mlp.gate_proj.weight
    expected = torch.floor(gate.shape[1] * rows + 1e-3)
    assert torch.equal((gate == 0).sum(1).float(), expected)
    assert abs(records["layers.0.self_attn.q_proj"].sparsity - 0.25) < 1e-9
