import torch
import torch.nn.functional as F
from torch import nn

from prunekit.recovery.lora import MaskedLoRALinear, merge_lora


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
