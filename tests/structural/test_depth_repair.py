"""Depth repair: the fold equals the unfolded hooked model, T equals a float64 least-squares
solve, the reported fit errors are the hidden-state errors of the repaired model, and run
selection scores equal brute force (with and without repair)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from structural_calls import ctx, depth

from models.tiny_families import FAMILIES
from prunekit.calibration.context import RunContext
from prunekit.config.depth import DepthConfig
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.structural.depth import remove_layers
from prunekit.structural.depth_repair import (
    LinearFit,
    branch_scale,
    fit_linear_map,
    fold_into_down,
    identity_distance,
    maximal_runs,
    repair_runs,
)
from prunekit.structural.depth_runs import best_run, prune_depth


def deep_model(family: str = "qwen2", layers: int = 5, seed: int = 0):
    """The tiny random model of a family with `layers` decoder layers."""
    from transformers import AutoModelForCausalLM

    cfg = FAMILIES[family]().to_dict()
    cfg.pop("layer_types", None)
    cfg["num_hidden_layers"] = layers
    torch.manual_seed(seed)
    config = type(FAMILIES[family]())(**cfg)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def _batches(n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (2, 16), generator=g) for _ in range(n)]


@torch.no_grad()
def stream_into(model, idx: int, ids: torch.Tensor) -> torch.Tensor:
    """The hidden state entering layer `idx` (or the final norm when idx = number of layers)."""
    layers = model.model.layers
    target = layers[idx] if idx < len(layers) else model.model.norm
    seen = []

    def hook(_m, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])

    handle = target.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(ids)
    finally:
        handle.remove()
    return seen[0]


def _rel(h: torch.Tensor, target: torch.Tensor) -> float:
    return float(((h.double() - target.double()) ** 2).sum() / (target.double() ** 2).sum())


def test_maximal_runs():
    assert maximal_runs([5, 2, 3]) == [(2, 4), (5, 6)]
    assert maximal_runs([0, 1, 2]) == [(0, 3)]
    assert maximal_runs([4, 1, 1]) == [(1, 2), (4, 5)]


def test_fit_equals_float64_lstsq_and_errors_by_hand():
    g = torch.Generator().manual_seed(0)
    d = 6
    parts = [
        tuple(torch.randn(2, 9, d, generator=g) for _ in range(3)) for _ in range(2)
    ]  # (D, r, L) per batch
    fit = LinearFit(d)
    for branch, resid, target in parts:
        fit.add(branch, resid, target)
    dm = torch.cat([p[0].reshape(-1, d) for p in parts]).double()
    y = torch.cat([(p[2].double() - p[1].double()).reshape(-1, d) for p in parts])
    lm = torch.cat([p[2].reshape(-1, d) for p in parts]).double()
    t = fit.solve(0.0)
    torch.testing.assert_close(t, torch.linalg.lstsq(dm, y).solution, rtol=1e-9, atol=1e-10)
    # ridge λ = ridge · mean diag(DᵀD): the stacked system [D; √λ I] T = [Y; 0]
    lam = 0.3 * float((dm * dm).sum(0).mean())
    aug = torch.cat([dm, lam**0.5 * torch.eye(d, dtype=torch.float64)])
    rhs = torch.cat([y, torch.zeros(d, d, dtype=torch.float64)])
    t_ridge = fit.solve(0.3, prior="zero")
    torch.testing.assert_close(t_ridge, torch.linalg.lstsq(aug, rhs).solution)
    # prior I: [D; √λ I] T = [Y; √λ I], shrinking towards no repair
    rhs_i = torch.cat([y, lam**0.5 * torch.eye(d, dtype=torch.float64)])
    t_id = fit.solve(0.3, prior="identity")
    torch.testing.assert_close(t_id, torch.linalg.lstsq(aug, rhs_i).solution)
    assert identity_distance(t_id) < identity_distance(t)
    assert identity_distance(fit.solve(1e6)) < 1e-4  # a huge ridge leaves block p as it was
    before, after = fit.errors(t_ridge)
    resid = lm - y  # r
    assert before == pytest.approx(float(((resid + dm - lm) ** 2).sum() / (lm**2).sum()))
    assert after == pytest.approx(float(((resid + dm @ t_ridge - lm) ** 2).sum() / (lm**2).sum()))
    assert fit.errors(fit.solve(0.0))[1] <= after  # the unregularised fit is the least squares
    assert identity_distance(torch.eye(d, dtype=torch.float64)) == 0.0
    # weighted rows: the same as repeating a row (weight 2) or dropping it (weight 0)
    w = torch.ones(2, 9)
    w[0, 0], w[1, 3] = 2.0, 0.0
    wfit = LinearFit(d)
    wfit.add(*parts[0], weight=w)
    rows = torch.cat([dm[:18], dm[:1]])[torch.arange(19) != 12]
    ys = torch.cat([y[:18], y[:1]])[torch.arange(19) != 12]
    torch.testing.assert_close(wfit.solve(0.0), torch.linalg.lstsq(rows, ys).solution)


def test_fit_refuses_bad_ridge_and_singular_gram():
    with pytest.raises(PrunekitError, match="ridge"):
        fit_linear_map(torch.eye(3), torch.eye(3), -1.0)
    with pytest.raises(PrunekitError, match="prior"):
        fit_linear_map(torch.eye(3), torch.eye(3), 0.1, "one")
    with pytest.raises(PrunekitError, match="singular"):
        fit_linear_map(torch.zeros(3, 3), torch.eye(3), 0.0)


@torch.no_grad()
@pytest.mark.parametrize("family", ["qwen2", "llama", "starcoder2", "granite"])
def test_fold_equals_unfolded_hooked_reference(family):
    """Removing [2, 4) and folding T into layer 1's down projection gives the logits of the model
    without the run whose layer 1 output gets the explicit s · M (T − I) added."""
    model = deep_model(family)
    ad = adapter_for(model)
    d = model.config.hidden_size
    g = torch.Generator().manual_seed(1)
    t = torch.eye(d, dtype=torch.float64) + 0.2 * torch.randn(
        d, d, generator=g, dtype=torch.float64
    )
    scale = branch_scale(model, ad)
    ids = _batches(1)[0]

    ref = copy.deepcopy(model)
    remove_layers(ref, ad, [2, 3])
    layer = ad.layers(ref)[1]
    seen = []
    down = layer.get_submodule(ad.mlp.output)
    h1 = down.register_forward_hook(lambda _m, _i, out: seen.append(out))

    def add(_m, _args, out):
        extra = scale * seen.pop() @ (t.float() - torch.eye(d))
        return (out[0] + extra, *out[1:]) if isinstance(out, tuple) else out + extra

    h2 = layer.register_forward_hook(add)
    expected = ref(ids).logits
    h1.remove(), h2.remove()

    folded = copy.deepcopy(model)
    fold_into_down(ad.layers(folded)[1], ad, t)
    remove_layers(folded, ad, [2, 3])
    got = folded(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got, ref(ids).logits, atol=1e-3)  # T really changed something


def test_gemma3_is_refused():
    model = deep_model("gemma3", layers=4)
    with pytest.raises(PrunekitError, match="exact only"):
        repair_runs(ctx(model, _batches()), [2])


def test_run_at_layer_zero_is_refused():
    model = deep_model()
    with pytest.raises(PrunekitError, match="layer 0"):
        repair_runs(ctx(model, _batches()), [0, 1])


@torch.no_grad()
@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_repair_reports_the_hidden_state_errors_and_lowers_them(family):
    """Two runs, the last ending at the final layer: each run's fit_before/fit_after are the
    relative errors ‖h − L‖²/‖L‖² of the model without (with) its repair, earlier runs repaired."""
    model = deep_model(family, layers=6)
    ad = adapter_for(model)
    batches = _batches()
    ids = torch.cat(batches)
    drop = [2, 4, 5]  # runs [2, 3) (folded into layer 1) and [4, 6) (into layer 3, final target)
    dense = [stream_into(model, i, ids) for i in (3, 6)]

    repaired = copy.deepcopy(model)
    reports = repair_runs(ctx(repaired, batches), drop, ridge=1e-6)
    assert [r["run"] for r in reports] == [[2, 3], [4, 6]]
    assert [r["layer"] for r in reports] == [1, 3]
    assert all(r["rows"] == ids.numel() for r in reports)

    half = copy.deepcopy(model)  # first run repaired only: "before" of the second run
    repair_runs(ctx(half, batches), [2], ridge=1e-6)
    plain, pruned_half = copy.deepcopy(model), copy.deepcopy(half)
    for m in (plain, pruned_half, repaired):
        remove_layers(m, ad, drop)

    # new indices: old layer 3 is layer 2; the final norm's input is the old final stream
    assert reports[0]["fit_before"] == pytest.approx(_rel(stream_into(plain, 2, ids), dense[0]))
    assert reports[0]["fit_after"] == pytest.approx(
        _rel(stream_into(repaired, 2, ids), dense[0]), rel=1e-3
    )
    assert reports[1]["fit_before"] == pytest.approx(
        _rel(stream_into(pruned_half, 3, ids), dense[1]), rel=1e-3
    )
    assert reports[1]["fit_after"] == pytest.approx(
        _rel(stream_into(repaired, 3, ids), dense[1]), rel=1e-3
    )
    for r in reports:
        assert r["fit_after"] < r["fit_before"]
        assert r["t_identity_distance"] > 0
    # and the repaired model's final hidden error is below the unrepaired one's
    assert _rel(stream_into(repaired, 3, ids), dense[1]) < _rel(
        stream_into(plain, 3, ids), dense[1]
    )


def test_skip_layer0_leaves_that_run_and_fits_the_rest_on_the_pruned_stream():
    model = deep_model(layers=5)
    ad = adapter_for(model)
    batches = _batches()
    ids = torch.cat(batches)
    target = stream_into(model, 3, ids)
    reports = repair_runs(ctx(model, batches), [0, 2], ridge=1e-6, skip_layer0=True)
    assert [r["run"] for r in reports] == [[2, 3]]
    remove_layers(model, ad, [0, 2])
    assert reports[0]["fit_after"] == pytest.approx(
        _rel(stream_into(model, 1, ids), target), rel=1e-3
    )


@torch.no_grad()
def _brute_kl(model, pruned, batches) -> float:
    total = count = 0.0
    for b in batches:
        lp = F.log_softmax(model(b).logits.float(), -1)
        lq = F.log_softmax(pruned(b).logits.float(), -1)
        total += float((lp.exp() * (lp - lq)).sum())
        count += lp.shape[0] * lp.shape[1]
    return total / count


@pytest.mark.parametrize("repair", [False, True])
def test_best_run_kl_equals_brute_force(repair):
    model = deep_model(layers=5)
    ad = adapter_for(model)
    batches = _batches()
    k = 2
    result = best_run(
        ctx(model, batches), depth(k, "kl", repair="linear" if repair else "none", ridge=1e-6)
    )
    starts = list(range(1 if repair else 0, 5 - k + 1))
    assert sorted(result.scores) == starts
    for i in starts:
        pruned = copy.deepcopy(model)
        if repair:
            repair_runs(ctx(pruned, batches), list(range(i, i + k)), ridge=1e-6)
        remove_layers(pruned, ad, list(range(i, i + k)))
        assert result.scores[i] == pytest.approx(_brute_kl(model, pruned, batches), rel=1e-3)
    best = min(starts, key=lambda i: (result.scores[i], i))
    assert result.run == (best, best + k) and result.removed == [best, best + 1]
    # streams (5 passes) + each candidate's layers after its run
    assert result.cost["layer_passes"] == 5 + sum(5 - i - k for i in starts)
    out = result.to_dict()
    assert out["run"] == [best, best + k] and ("fits" in out) == repair


def test_best_run_cosine_by_hand_and_repair_scores_lower():
    model = deep_model(layers=5)
    batches = _batches()
    ids = torch.cat(batches)
    plain = best_run(ctx(model, batches), depth(2, "cosine"))
    fixed = best_run(ctx(model, batches), depth(2, "cosine", repair="linear", ridge=1e-6))
    for i in range(0, 4):
        a, b = stream_into(model, i, ids), stream_into(model, i + 2, ids)
        expected = float((1 - F.cosine_similarity(a, b, dim=-1)).mean())
        assert plain.scores[i] == pytest.approx(expected, rel=1e-4)
    for i in fixed.scores:  # the repaired stream is closer to the dense one
        assert fixed.scores[i] < plain.scores[i]
        assert fixed.fits[i]["fit_after"] < fixed.fits[i]["fit_before"]


def test_best_run_refuses_runs_that_cannot_be_repaired():
    model = deep_model(layers=3)
    with pytest.raises(PrunekitError, match="remove"):
        best_run(ctx(model, _batches()), depth(3, repair="linear"))
    with pytest.raises(PrunekitError, match="criterion"):
        best_run(ctx(model, _batches()), depth(1, "nope"))


@torch.no_grad()
@pytest.mark.parametrize("selection", ["run", "greedy"])
def test_prune_depth_report(selection):
    model = deep_model(layers=5)
    dense = copy.deepcopy(model)
    ad = adapter_for(model)
    batches = _batches()
    cfg = DepthConfig(remove=2, criterion="kl", selection=selection, repair="linear", ridge=1e-6)
    report = prune_depth(RunContext(model, ad, batches, progress=False), cfg)
    assert len(ad.layers(model)) == 3 == report["layers_after"]
    assert report["removed"] == sorted(report["order"])
    assert [i for a, b in report["runs"] for i in range(a, b)] == report["removed"]
    repaired_runs = [r["run"] for r in report["runs_repaired"]]
    unrepaired = [r["run"] for r in report["runs_unrepaired"]]
    assert sorted(repaired_runs + unrepaired) == report["runs"]
    if selection == "run":
        assert report["selection_result"]["run"] == report["runs"][0]
        # the chosen run's score is the KL of the model as returned
        score = report["selection_result"]["scores"][str(report["runs"][0][0])]
        assert _brute_kl(dense, model, batches) == pytest.approx(score, rel=1e-3)
    assert set(report["seconds"]) == {"select", "repair", "total"}
    with pytest.raises(PrunekitError, match="selection"):
        DepthConfig.check({"remove": 1, "selection": "best"})
    with pytest.raises(PrunekitError, match="repair"):
        DepthConfig.check({"remove": 1, "repair": "cosine"})
