import torch

from prunekit.recovery.masks import SparsityMasks, detect_pattern, nm_valid


def _brute_nm(keep: torch.Tensor, n: int, m: int) -> bool:
    for row in keep.tolist():
        for g in range(0, len(row), m):
            if sum(1 for k in row[g : g + m] if not k) < n:
                return False
    return True


def test_nm_valid_matches_brute_force():
    torch.manual_seed(0)
    for _ in range(50):
        keep = torch.rand(4, 16) > torch.rand(1).item()
        for n, m in ((2, 4), (4, 8), (1, 4)):
            assert nm_valid(keep, n, m) == _brute_nm(keep, n, m)


def test_detect_pattern_prefers_2_4_and_sees_unstructured():
    keep = torch.tensor([[True, False, True, False] * 2])
    assert detect_pattern({"a": keep}) == (2, 4)
    loose = torch.tensor([[True, True, True, False, False, False, False, True]])
    assert detect_pattern({"a": loose}) == (4, 8)
    assert detect_pattern({"a": torch.tensor([[True, True, True, False]])}) is None


def test_verify_catches_a_pruned_weight_that_moved(tiny_llama):
    from prunekit.models.adapters import adapter_for

    adapter = adapter_for(tiny_llama)
    lin = adapter.layers(tiny_llama)[0].mlp.down_proj
    with torch.no_grad():
        lin.weight[:, ::2] = 0
    masks = SparsityMasks.from_model(tiny_llama, adapter)
    assert masks.pattern == (2, 4)
    assert masks.verify(tiny_llama, adapter)["pruned_weights_still_zero"]
    with torch.no_grad():
        lin.weight[0, 0] = 1.0
    report = masks.verify(tiny_llama, adapter)
    assert report["pruned_weights_nonzero_after"] == 1 and not report["pruned_weights_still_zero"]
    masks.apply(tiny_llama, adapter)
    assert lin.weight[0, 0] == 0


def test_mask_grads_zero_exactly_the_pruned_gradients(tiny_llama):
    from prunekit.models.adapters import adapter_for

    adapter = adapter_for(tiny_llama)
    downs = [layer.mlp.down_proj.weight for layer in adapter.layers(tiny_llama)[:2]]
    with torch.no_grad():
        for w in downs:
            w[:, ::2] = 0
    masks = SparsityMasks.from_model(tiny_llama, adapter)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    tiny_llama(ids).logits.square().mean().backward()
    grads = [w.grad.clone() for w in downs]
    assert all(bool((g[:, ::2] != 0).all()) for g in grads)  # the pruned entries do get gradients
    masks.mask_grads(tiny_llama, adapter, only=1)
    assert torch.equal(downs[0].grad, grads[0])  # layer 0 not selected: untouched
    assert torch.equal(downs[1].grad[:, ::2], torch.zeros_like(grads[1][:, ::2]))
    assert torch.equal(downs[1].grad[:, 1::2], grads[1][:, 1::2])
    masks.mask_grads(tiny_llama, adapter)
    assert torch.equal(downs[0].grad[:, ::2], torch.zeros_like(grads[0][:, ::2]))
    assert torch.equal(downs[0].grad[:, 1::2], grads[0][:, 1::2])
