"""`prunekit.depth` and `prunekit.width`: the API reaches repair, run selection and refit, and does
what the recipe step does (same layers removed, same weights)."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from conftest import tiny_model
from prunekit.calibration.context import RunContext
from prunekit.config.depth import DepthConfig
from prunekit.config.width import WidthConfig
from prunekit.errors import PrunekitError
from prunekit.structural.depth_runs import prune_depth
from prunekit.structural.width import prune_width


def _ids(vocab: int, n: int = 8, t: int = 16) -> torch.Tensor:
    return torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("selection", ["greedy", "run"])
def test_depth_api_equals_the_pipeline_it_wraps(selection):
    model = tiny_model("qwen2")
    ids = _ids(model.config.vocab_size)
    twin = copy.deepcopy(model)
    result = prunekit.depth(
        model,
        calib=ids,
        remove=1,
        selection=selection,
        repair="linear",
        criterion="cosine",
        batch_size=4,
        seq_len=16,
        progress=False,
    )
    cfg = DepthConfig(remove=1, criterion="cosine", selection=selection, repair="linear")
    ref = prune_depth(RunContext.of(twin, list(ids.split(4)), progress=False), cfg)
    rep = result.report["depth"]
    assert rep["removed"] == ref["removed"] and rep["repair"] == "linear"
    assert rep["runs_repaired"] or rep["runs_unrepaired"]
    assert result.report["params"]["total"] == sum(p.numel() for p in twin.parameters())
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)


def test_width_api_refit_equals_the_step():
    model = tiny_model("llama")
    ids = _ids(model.config.vocab_size)
    twin = copy.deepcopy(model)
    result = prunekit.width(
        model,
        calib=ids,
        ffn_keep=0.5,
        multiple=1,
        refit=True,
        batch_size=4,
        seq_len=16,
        progress=False,
    )
    cfg = WidthConfig(ffn_keep=0.5, criterion="output", multiple=1, refit=True)
    prune_width(RunContext.of(twin, list(ids.split(4)), progress=False), cfg)
    assert result.report["width"]["refit"] is True
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_ridge_is_one_line_before_calibration():
    model = tiny_model("llama")
    with pytest.raises(PrunekitError, match="ridge must be a finite number") as err:
        prunekit.depth(model, calib="no-such-corpus", remove=1, repair="linear", ridge=-1.0)
    assert "\n" not in str(err.value)
