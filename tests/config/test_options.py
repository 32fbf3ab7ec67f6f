"""The config mechanism: the registry's one-line lookup, API keywords validated by the model,
method options reaching the method, and an N:M pattern that does not fit a layer."""

from __future__ import annotations

import inspect

import pytest
import torch

import prunekit
from conftest import tiny_model
from prunekit.config import Registry
from prunekit.config.prune import PruneConfig
from prunekit.errors import PrunekitError
from prunekit.methods import pruners


def test_registry_lookup_names_the_valid_entries_and_stays_a_mapping():
    reg = Registry("widget", [])
    reg.register(int, "a")
    reg["b"] = float
    assert list(reg) == ["a", "b"] and reg.get("c") is None and reg.lookup("b") is float
    with pytest.raises(PrunekitError, match="^unknown widget 'c'; choose one of: a, b$"):
        reg.lookup("c")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(str, "a")


def test_prune_signature_lists_the_config_fields():
    params = inspect.signature(prunekit.prune).parameters
    assert params["sparsity"].default is None and params["method"].default == "wanda"
    assert params["calib_samples"].default == 64 and params["method_options"].default is None
    assert params["device"].default == "cpu"


def _ids():
    return torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))


def test_api_keywords_are_checked_by_the_model():
    model = tiny_model("llama")
    with pytest.raises(PrunekitError, match="^unknown option 'sparsty'; valid options: calib,"):
        prunekit.prune(model, calib=_ids(), sparsty=0.5)
    with pytest.raises(PrunekitError, match="^seq_len must be a whole number ≥ 2, got 1$"):
        prunekit.prune(model, calib=_ids(), sparsity=0.5, seq_len=1)
    with pytest.raises(PrunekitError, match="not both"):
        prunekit.prune(model, None, PruneConfig(sparsity=0.5), sparsity=0.5)


def test_method_options_reach_the_method(monkeypatch):
    """sparsegpt's blocksize and damping, unreachable before, arrive in its solver; the report
    records them because they are not the defaults."""
    seen = []
    solver = pruners.sparsegpt_prune_group

    def spy(weights, hessian, sparsities, pattern, blocksize, percdamp):
        seen.append((blocksize, percdamp))
        return solver(weights, hessian, sparsities, pattern, blocksize, percdamp)

    monkeypatch.setattr(pruners, "sparsegpt_prune_group", spy)
    options = {"blocksize": 16, "percdamp": 0.05}
    result = prunekit.prune(
        tiny_model("llama"),
        calib=_ids(),
        seq_len=16,
        method="sparsegpt",
        sparsity=0.5,
        method_options=options,
        progress=False,
    )
    assert seen and set(seen) == {(16, 0.05)}
    assert result.report["method"]["options"] == options


def test_an_nm_pattern_that_does_not_divide_a_layer_is_one_line_before_calibration():
    with pytest.raises(PrunekitError, match="pattern 3:7 groups every 7 inputs, but layers.0"):
        prunekit.prune(tiny_model("llama"), calib=_ids(), pattern="3:7", progress=False)
