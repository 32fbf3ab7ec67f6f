import torch
import torch.nn.functional as F
from torch import nn

from prunekit.recovery.lora import MaskedLoRALinear, attach_lora, merge_lora


def _lora(keep):
    torch.manual_seed(0)
    base = nn.Linear(8, 6)
    if keep is not None:
        with torch.no_grad():
            base.weight.mul_(keep)
    layer = MaskedLoRALinear(base, rank=2, alpha=4.0, keep=keep)
    with torch.no_grad():
        layer.lora_B.normal_()  # a trained-looking, non-zero update
    return layer


def test_masked_update_never_touches_pruned_weights_and_merge_is_exact():
    keep = torch.rand(6, 8, generator=torch.Generator().manual_seed(1)) > 0.5
    layer = _lora(keep)
    x = torch.randn(3, 8)
    expected = F.linear(
        x, layer.base.weight + (layer.lora_B @ layer.lora_A) * 2.0 * keep, layer.base.bias
    )
    assert torch.allclose(layer(x), expected, atol=1e-6)
    holder = nn.Sequential(layer)
    assert merge_lora(holder) == 1
    merged = holder[0]
    assert isinstance(merged, nn.Linear)
    assert torch.equal(merged.weight[~keep], torch.zeros(int((~keep).sum())))
    assert torch.allclose(merged(x), expected, atol=1e-6)


def test_unmasked_lora_runs_factorised_with_the_same_result():
    layer = _lora(None)
    x = torch.randn(3, 8)
    dense = F.linear(x, layer.base.weight + (layer.lora_B @ layer.lora_A) * 2.0, layer.base.bias)
    assert torch.allclose(layer(x), dense, atol=1e-5)


def test_a_fresh_adapter_leaves_the_layer_exactly_as_it_was():
    torch.manual_seed(0)
    base = nn.Linear(8, 6)
    keep = torch.rand(6, 8, generator=torch.Generator().manual_seed(1)) > 0.5
    x = torch.randn(3, 8)
    with torch.no_grad():
        before = base(x)
    for k in (None, keep):
        with torch.no_grad():
            assert torch.equal(MaskedLoRALinear(base, rank=2, alpha=4.0, keep=k)(x), before)


def test_attach_lora_masks_each_linear_with_its_own_keep():
    torch.manual_seed(0)
    parent = nn.Module()
    parent.a, parent.b = nn.Linear(8, 6), nn.Linear(8, 6)
    keep = torch.rand(6, 8, generator=torch.Generator().manual_seed(1)) > 0.5
    with torch.no_grad():
        parent.a.weight.mul_(keep)
    before = {n: getattr(parent, n).weight.clone() for n in ("a", "b")}
    params = attach_lora(
        {n: (parent, n, getattr(parent, n)) for n in ("a", "b")}, {"a": keep}, rank=2, alpha=4.0
    )
    assert len(params) == 4
    with torch.no_grad():
        for p in params:
            p.normal_()  # a trained-looking update everywhere
    assert merge_lora(parent) == 2
    a, b = parent.a.weight, parent.b.weight
    assert torch.equal(a[~keep], torch.zeros(int((~keep).sum())))  # pruned: still exactly zero
    assert bool((a[keep] != before["a"][keep]).all())  # the rest of a trained
    assert bool((b != before["b"]).all())  # b has no mask: all of it trained
