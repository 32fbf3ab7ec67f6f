"""An N:M prune survives export: every group of M input columns of every decoder Linear in the
saved checkpoint, reloaded with plain transformers, holds exactly N zeros."""

import pytest
from torch import nn

from prunekit.cli import main


@pytest.mark.parametrize(("method", "pattern"), [("wanda", "2:4"), ("sparsegpt", "4:8")])
def test_every_nm_group_of_the_exported_checkpoint(tmp_path, tiny_model_dir, method, pattern):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    argv = ["prune", str(tiny_model_dir), "--method", method, "--pattern", pattern]
    assert main([*argv, "--calib-samples", "4", "--seq-len", "32", "-o", str(out)]) == 0
    n, m = (int(v) for v in pattern.split(":"))
    model = AutoModelForCausalLM.from_pretrained(out)
    linears = {
        name: mod for name, mod in model.model.layers.named_modules() if isinstance(mod, nn.Linear)
    }
    assert len(linears) == 3 * 7
    for name, lin in linears.items():
        w = lin.weight
        groups = (w == 0).reshape(w.shape[0], -1, m).sum(-1)
        assert bool((groups == n).all()), f"{name}: {groups.unique().tolist()} zeros per group"
    head = model.get_output_embeddings().weight
    assert not bool((head == 0).any())  # the head is not pruned
