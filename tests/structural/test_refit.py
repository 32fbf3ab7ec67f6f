"""Refit of the consumer projection after structured cuts: equals a float64 least-squares solve,
never worse than plain slicing on the calibration data, and lowers the error of width and SAAP cuts."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import tiny_model
from models.tiny_families import FAMILIES, tiny_family_model
from prunekit.calibration.context import RunContext
from prunekit.config.width import WidthConfig
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.structural.groups import ChannelGroups, HeadGroups
from prunekit.structural.refit import (
    consumer_part,
    keep_and_refit,
    output_errors,
    refit_columns,
    refit_linear,
)
from prunekit.structural.saap import SaapConfig, apply_scores, prune_structured, score_groups
from prunekit.structural.width import prune_width


def _batches(n: int = 4, length: int = 16):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 128, (2, length), generator=g) for _ in range(n)]


def _problem(n: int, d_in: int = 12, d_out: int = 5, kept: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # correlated inputs, as real activations are: the removed columns are partly predictable
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) @ torch.randn(
        d_in, d_in, generator=g, dtype=torch.float64
    )
    w = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    keep = torch.sort(torch.randperm(d_in, generator=g)[:kept]).values
    return x, w, keep


def test_refit_equals_float64_least_squares_at_damp_zero():
    x, w, keep = _problem(200)
    ref = torch.linalg.lstsq(x[:, keep], x @ w.T).solution.T  # min ‖X_K W'ᵀ − X Wᵀ‖
    got = refit_columns(w, x.T @ x, keep, damp=0.0)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
    # float32 weight and Gram (as the engine gives them): solved in float64, returned as float32
    got32 = refit_columns(w.float(), (x.T @ x).float(), keep, damp=0.0)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("damp", [1e-3, 0.01, 0.5])
def test_damped_refit_is_ridge_towards_the_sliced_weights(damp):
    """min ‖X_K W'ᵀ − X Wᵀ‖² + λ‖W' − W_K‖², λ = damp · mean(diag G_KK): an augmented lstsq."""
    x, w, keep = _problem(60, seed=1)
    gram = x.T @ x
    lam = damp * gram[keep][:, keep].diagonal().mean()
    a = torch.cat([x[:, keep], lam.sqrt() * torch.eye(len(keep), dtype=torch.float64)])
    b = torch.cat([x @ w.T, lam.sqrt() * w[:, keep].T])
    ref = torch.linalg.lstsq(a, b).solution.T
    torch.testing.assert_close(refit_columns(w, gram, keep, damp), ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [5, 40, 400])  # fewer tokens than kept columns: G_KK singular
@pytest.mark.parametrize("damp", [0.0, 0.01, 1.0])
def test_refit_never_increases_the_output_error(seed, n, damp):
    x, w, keep = _problem(n, seed=seed)
    gram = x.T @ x
    new = refit_columns(w, gram, keep, damp)
    assert torch.isfinite(new).all()
    errors = output_errors(w, gram, keep, new)
    dense = (x @ w.T).pow(2).sum()
    # the errors from G alone are the explicit ‖W X − W'_K X_K‖² / ‖W X‖²
    explicit = (x @ w.T - x[:, keep] @ new.T).pow(2).sum() / dense
    sliced = (x @ w.T - x[:, keep] @ w[:, keep].T).pow(2).sum() / dense
    assert errors["after"] == pytest.approx(float(explicit), rel=1e-6, abs=1e-12)
    assert errors["before"] == pytest.approx(float(sliced), rel=1e-6, abs=1e-12)
    assert errors["after"] <= errors["before"] + 1e-12
    # refit_linear writes the same weights and reads the same errors from the solve's by-products
    linear = torch.nn.Linear(len(keep), w.shape[0], dtype=torch.float64)
    bias = linear.bias.detach().clone()
    got = refit_linear(linear, w, gram, keep, damp)
    torch.testing.assert_close(linear.weight.detach(), new)
    assert torch.equal(linear.bias.detach(), bias)
    assert got["before"] == pytest.approx(errors["before"], rel=1e-5, abs=1e-9)
    assert got["after"] == pytest.approx(errors["after"], rel=1e-4, abs=1e-7)


def test_refit_bad_input_is_one_line():
    x, w, keep = _problem(30)
    gram = x.T @ x
    with pytest.raises(PrunekitError, match="damp must be a finite number"):
        refit_columns(w, gram, keep, damp=-0.1)
    with pytest.raises(PrunekitError, match="damp must be a finite number"):
        refit_columns(w, gram, keep, damp=float("nan"))
    with pytest.raises(PrunekitError, match="Gram matrix is"):
        refit_columns(w, gram[:5, :5], keep)
    with pytest.raises(PrunekitError, match="distinct"):
        refit_columns(w, gram, torch.tensor([1, 1]))
    with pytest.raises(PrunekitError, match="must lie in"):
        refit_columns(w, gram, torch.tensor([0, 12]))


def _inputs_of(model, name: str, index: int, batches) -> torch.Tensor:
    """Brute force: the input rows of layer `index`'s Linear `name` over whole-model forwards."""
    rows = []
    lin = model.model.layers[index].get_submodule(name)
    handle = lin.register_forward_pre_hook(
        lambda _m, inp: rows.append(inp[0].reshape(-1, inp[0].shape[-1]).double())
    )
    with torch.no_grad():
        for b in batches:
            model(b)
    handle.remove()
    return torch.cat(rows)


def _logit_mse(model, dense, batches) -> float:
    with torch.no_grad():
        return sum(float((model(b).logits - dense(b).logits).pow(2).mean()) for b in batches)


def test_width_refit_equals_sequential_least_squares_on_a_tiny_model():
    """Block by block, on the stream pruned and refit before it: the 'output' channels of the
    dense block and down_proj's kept columns as a float64 lstsq of the dense down_proj output."""
    model = tiny_model("qwen2")
    ref = copy.deepcopy(model)
    batches = _batches()
    k = 32
    for i, layer in enumerate(ref.model.layers):
        x = _inputs_of(ref, "mlp.down_proj", i, batches)
        down = layer.mlp.down_proj.weight.data.double()
        scores = down.norm(dim=0) * x.pow(2).sum(0).sqrt()
        idx = torch.sort(torch.topk(scores, k).indices).values
        new = torch.linalg.lstsq(x[:, idx], x @ down.T).solution.T
        for name in ("gate_proj", "up_proj"):
            lin = layer.mlp.get_submodule(name)
            lin.weight = torch.nn.Parameter(lin.weight.data[idx].clone())
        layer.mlp.down_proj.weight = torch.nn.Parameter(new.float())
    cfg = WidthConfig(ffn_keep=0.5, multiple=32, refit=True, refit_damp=0.0)
    report = prune_width(RunContext.of(model, batches, progress=False), cfg)
    for layer, want in zip(model.model.layers, ref.model.layers):
        torch.testing.assert_close(
            layer.mlp.down_proj.weight, want.mlp.down_proj.weight, rtol=1e-3, atol=1e-4
        )
    assert report["refit"] is True and report["refit_damp"] == 0.0
    assert all(
        a <= b for a, b in zip(report["refit_error"]["after"], report["refit_error"]["before"])
    )


@pytest.mark.parametrize(
    ("arch", "criterion"), [("llama", "output"), ("qwen2", "activation"), ("qwen2", "taylor")]
)
def test_width_refit_lowers_the_error_and_saves_as_a_stock_model(arch, criterion, tmp_path):
    from transformers import AutoModelForCausalLM

    dense = tiny_model(arch)
    batches = _batches()
    plain, refit = copy.deepcopy(dense), copy.deepcopy(dense)
    adapter = adapter_for(dense)
    cfg = WidthConfig(ffn_keep=0.5, criterion=criterion, multiple=16)
    rep0 = prune_width(RunContext(plain, adapter, batches, progress=False), cfg)
    cfg1 = cfg.model_copy(update={"refit": True})
    rep1 = prune_width(RunContext(refit, adapter, batches, progress=False), cfg1)
    assert rep0["refit"] is False and rep0["refit_error"] is None
    errors = rep1["refit_error"]
    assert len(errors["after"]) == len(errors["before"]) == 3
    assert all(0 <= a < b <= 1 for a, b in zip(errors["after"], errors["before"]))
    assert _logit_mse(refit, dense, batches) < _logit_mse(plain, dense, batches)
    # the same channels go; only the kept down_proj columns change
    for p, r in zip(plain.model.layers, refit.model.layers):
        assert p.mlp.down_proj.weight.shape == r.mlp.down_proj.weight.shape == (32, 32)
        if criterion == "taylor":  # the scores do not depend on the stream: same channels
            torch.testing.assert_close(p.mlp.gate_proj.weight, r.mlp.gate_proj.weight)
    assert refit.config.intermediate_size == 32
    refit.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(batches[0]).logits, refit(batches[0]).logits)


def test_width_refit_bad_options():
    with pytest.raises(PrunekitError, match="refit_damp must be a finite number"):
        WidthConfig.check({"ffn_keep": 0.5, "refit": True, "refit_damp": -1})
    with pytest.raises(PrunekitError, match="refit must be true or false"):
        WidthConfig.check({"ffn_keep": 0.5, "refit": "yes"})


def test_keep_and_refit_maps_kept_head_groups_to_o_proj_columns():
    model = tiny_model("llama")
    layer = model.model.layers[0]
    kind = HeadGroups(adapter_for(model))
    assert consumer_part(kind, layer).name == "self_attn.o_proj"
    assert consumer_part(ChannelGroups(adapter_for(model)), layer).name == "mlp.down_proj"
    x = torch.randn(100, 32)
    dense = layer.self_attn.o_proj.weight.data.clone()
    keep_and_refit(kind, layer, torch.tensor([1]), x.T @ x, damp=0.0)
    # 2 kv groups, 2 query heads of 8 each per group: group 1 owns o_proj columns 16..31
    want = refit_columns(dense, x.T @ x, torch.arange(16, 32), damp=0.0)
    torch.testing.assert_close(layer.self_attn.o_proj.weight, want)
    assert layer.self_attn.q_proj.weight.shape == (16, 32)


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("qwen2", {"heads": 0.5, "ffn": 0.4}),
        ("llama", {"heads": 0.5}),
        ("llama", {"ffn": 0.5}),
        ("qwen2", {"target": 0.3}),
    ],
)
def test_saap_refit_lowers_the_error(family, options):
    dense = tiny_family_model(family)
    adapter = adapter_for(dense)
    batches = _batches()
    cfg = SaapConfig(**options, ratios="uniform", skip_first=0, skip_last=0, max_ratio=0.5)
    scored = score_groups(RunContext(dense, adapter, batches, progress=False), cfg)
    plain, refit = copy.deepcopy(dense), copy.deepcopy(dense)
    rep0 = apply_scores(RunContext(plain, adapter, []), cfg, scored)
    cfg1 = cfg.model_copy(update={"refit": True})
    rep1 = apply_scores(RunContext(refit, adapter, batches, progress=False), cfg1, scored)
    assert rep0["refit"] is None and rep1["refit"]["damp"] == cfg1.refit_damp
    assert rep1["config"]["refit"] is True
    for name in rep1["kinds"]:
        errors = rep1["refit"][name]
        touched = [r > 0 for r in rep1["kinds"][name]["ratio"]]
        assert [e is not None for e in errors["after"]] == touched
        assert all(a < b for a, b in zip(errors["after"], errors["before"]) if a is not None)
    # the same groups go: every shape as without refit
    for p, r in zip(plain.parameters(), refit.parameters()):
        assert p.shape == r.shape
    assert rep1["params_after"] == rep0["params_after"]
    assert _logit_mse(refit, dense, batches) < _logit_mse(plain, dense, batches)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_saap_refit_runs_and_saves_for_every_family(family, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_family_model(family)
    adapter = adapter_for(model)
    cfg = SaapConfig(heads=0.5, ffn=0.25, ratios="uniform", max_ratio=0.5, refit=True)
    rep = prune_structured(RunContext(model, adapter, _batches(2), progress=False), cfg)
    assert rep["uniform"] and rep["refit"] is not None
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = _batches(1)[0]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)


def test_saap_refit_options_are_validated():
    with pytest.raises(PrunekitError, match="refit must be true or false"):
        SaapConfig.check({"heads": 0.3, "refit": "yes"})
    with pytest.raises(PrunekitError, match="refit_damp must be a finite number"):
        SaapConfig.check({"heads": 0.3, "refit": True, "refit_damp": -1})
    assert SaapConfig.parse({"ffn": 0.3, "refit": True, "refit_damp": 0.1}).refit_damp == 0.1
    model = tiny_family_model("llama")
    adapter = adapter_for(model)
    cfg = SaapConfig(ffn=0.3, refit=True)
    scored = score_groups(RunContext(model, adapter, _batches(1), progress=False), cfg)
    with pytest.raises(PrunekitError, match="refit needs the calibration batches"):
        apply_scores(RunContext(model, adapter, []), cfg, scored)
