"""Group-wise fine-tuning (`layers: pruned`): only the layers pruning touched train."""

import pytest
import torch
from recovery_helpers import config, load_pair, text_jsonl

from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.recovery.run import pruned_layers, recover
from prunekit.structural.groups import ChannelGroups


def _zero_half_of_layer(model, index: int) -> None:
    adapter = adapter_for(model)
    with torch.no_grad():
        for lin in adapter.linears(adapter.layers(model)[index]).values():
            w = lin.weight
            w.scatter_(1, w.abs().argsort(1)[:, : w.shape[1] // 2], 0.0)


@pytest.mark.parametrize("method", ["distill", "reconstruct"])
def test_only_the_pruned_layer_changes(tiny_model_dir, tmp_path, method):
    teacher, student, tok = load_pair(tiny_model_dir)
    _zero_half_of_layer(student, 1)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    data = str(text_jsonl(tmp_path)) if method == "distill" else "python"
    cfg = config(data=data, method=method, layers="pruned", lr=1e-2, max_steps=2, windows=4)
    result = recover(student, tok, teacher, tok, cfg, progress=False)
    assert result.report["trained_layers"] == [1]
    assert result.report["masks"]["pruned_weights_still_zero"]
    changed = {n for n, w in student.state_dict().items() if not torch.equal(w, before[n])}
    assert changed and all(n.startswith("model.layers.1.") for n in changed), changed


def test_a_narrower_layer_counts_as_pruned(tiny_model_dir):
    teacher, student, _ = load_pair(tiny_model_dir)
    adapter = adapter_for(student)
    ChannelGroups(adapter).keep(adapter.layers(student)[1], torch.arange(8))
    assert pruned_layers(student, teacher, adapter) == [1]


def test_an_untouched_student_is_refused_even_with_zeros_of_its_own(tiny_model_dir):
    teacher, student, _ = load_pair(tiny_model_dir)
    adapter = adapter_for(student)
    with torch.no_grad():  # a dequantized model has exact zeros that no pruning made
        for model in (teacher, student):
            adapter.linears(adapter.layers(model)[0])["mlp.up_proj"].weight[0, :3] = 0.0
    with pytest.raises(PrunekitError, match="no layer"):
        pruned_layers(student, teacher, adapter)


def test_block_reconstruction_keeps_pruned_weights_zero_between_steps(tiny_model_dir, monkeypatch):
    """Checked at the start of every optimiser step, i.e. after the previous step's masking (the
    block's final re-apply and `recover`'s would hide a weight that moved during training)."""
    teacher, student, tok = load_pair(tiny_model_dir)
    _zero_half_of_layer(student, 1)
    adapter = adapter_for(student)
    pruned = [
        (lin.weight, lin.weight == 0)
        for lin in adapter.linears(adapter.layers(student)[1]).values()
    ]
    moved = []

    class Checked(torch.optim.AdamW):
        def step(self, closure=None):
            moved.append(sum(int((w[gone] != 0).sum()) for w, gone in pruned))
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Checked)
    cfg = config(data="python", method="reconstruct", layers="pruned", lr=1e-2, windows=4)
    recover(student, tok, teacher, tok, cfg, progress=False)
    assert len(moved) >= 3 and not any(moved), moved
