"""prune_structured end to end on tiny models: budgets, lowest groups removed, configs, reload, bad input."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch

from models.tiny_families import FAMILIES, tiny_family_model
from prunekit.calibration.context import RunContext
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.recovery.report import param_summary
from prunekit.structural.groups import ChannelGroups, HeadGroups
from prunekit.structural.importance import (
    REGISTRY,
    TaylorElement,
    TaylorVector,
    accumulate_gradients,
    kind_scores,
)
from prunekit.structural.ratios import layer_weights
from prunekit.structural.saap import SaapConfig, check_budget, prune_structured

IDS = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(1))


def _batches():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 128, (2, 12), generator=g) for _ in range(2)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_budget_met_and_parameters_really_go(family):
    model = tiny_family_model(family)
    adapter = adapter_for(model)
    before = param_summary(model, adapter)
    rep = prune_structured(
        RunContext(model, adapter, _batches(), progress=False), SaapConfig(heads=0.3, ffn=0.4)
    )
    removed = 0
    for k in rep["kinds"].values():
        total = sum(c * g for c, g in zip(k["group_cost"], k["groups_before"]))
        assert k["target_params"] == round((0.3 if k is rep["kinds"]["heads"] else 0.4) * total)
        assert abs(k["removed_params"] - k["target_params"]) < max(k["group_cost"])
        removed += k["removed_params"]
    after = param_summary(model, adapter)
    assert before["total"] - after["total"] == removed
    assert rep["params_before"]["non_embedding"] - rep["params_after"]["non_embedding"] == removed
    assert rep["params_after"]["total"] == after["total"]
    assert set(rep["kinds"]["heads"]["importance"]["sigma"]) == {"taylor_vector", "taylor_element"}
    with torch.no_grad():
        assert torch.isfinite(model(IDS).logits).all()


@pytest.mark.parametrize("importance", list(REGISTRY))
def test_the_lowest_scored_groups_are_the_ones_removed(importance):
    model = tiny_family_model("llama")
    adapter = adapter_for(model)
    ref = copy.deepcopy(model)
    stats = accumulate_gradients(
        RunContext(ref, adapter, _batches(), progress=False), REGISTRY[importance]().needs_fisher
    )
    scores = {
        name: kind_scores(adapter.layers(ref), kind, REGISTRY[importance](), stats)[0]
        for name, kind in (("heads", HeadGroups(adapter)), ("ffn", ChannelGroups(adapter)))
    }
    rep = prune_structured(
        RunContext(model, adapter, _batches(), progress=False),
        SaapConfig(heads=0.3, ffn=0.3, importance=importance),
    )
    kinds = {"heads": HeadGroups(adapter), "ffn": ChannelGroups(adapter)}
    for i, (layer, ref_layer) in enumerate(zip(adapter.layers(model), adapter.layers(ref))):
        want = copy.deepcopy(ref_layer)
        for name, kind in kinds.items():
            k = rep["kinds"][name]["groups_after"][i]
            kind.keep(want, torch.sort(torch.topk(scores[name][i], k).indices).values)
        for n, p in want.named_parameters():
            torch.testing.assert_close(layer.get_parameter(n), p, rtol=0, atol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_uniform_result_saves_as_a_stock_model(family, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_family_model(family)
    adapter = adapter_for(model)
    # 1 of 2 kv groups and 16 of 64 channels in every block: a uniform result
    cfg = SaapConfig(heads=0.5, ffn=0.25, ratios="uniform", max_ratio=0.5)
    rep = prune_structured(RunContext(model, adapter, _batches(), progress=False), cfg)
    assert rep["uniform"]
    c = model.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.intermediate_size) == (2, 1, 48)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(IDS).logits, model(IDS).logits, rtol=1e-5, atol=1e-5)


def test_global_target_splits_by_one_fraction():
    model = tiny_family_model("qwen3")
    adapter = adapter_for(model)
    ne = param_summary(model, adapter)["non_embedding"]
    rep = prune_structured(
        RunContext(model, adapter, _batches(), progress=False), SaapConfig(target=0.2)
    )
    removed = sum(k["removed_params"] for k in rep["kinds"].values())
    largest = max(max(k["group_cost"]) for k in rep["kinds"].values())
    assert abs(removed - 0.2 * ne) < largest
    fracs = [
        k["target_params"] / sum(c * g for c, g in zip(k["group_cost"], k["groups_before"]))
        for k in rep["kinds"].values()
    ]
    assert fracs[0] == pytest.approx(fracs[1], rel=1e-3)


def test_skip_leaves_first_and_last_blocks_whole():
    model = tiny_family_model("gemma3")  # 4 blocks
    adapter = adapter_for(model)
    cfg = SaapConfig(ffn=0.3, ratios="skip", skip_first=1, skip_last=1)
    rep = prune_structured(RunContext(model, adapter, _batches(), progress=False), cfg)
    ffn = rep["kinds"]["ffn"]
    assert ffn["ratio"][0] == ffn["ratio"][-1] == 0 and min(ffn["ratio"][1:3]) > 0.5
    assert "heads" not in rep["kinds"]
    assert [layer.mlp.down_proj.in_features for layer in model.model.layers][0] == 64


def test_multiple_rounds_channels_to_whole_steps():
    model = tiny_family_model("llama")
    adapter = adapter_for(model)
    rep = prune_structured(
        RunContext(model, adapter, _batches(), progress=False), SaapConfig(ffn=0.3, multiple=8)
    )
    assert all(w % 8 == 0 for w in rep["kinds"]["ffn"]["groups_after"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heads": 1.0}, "heads must be a fraction in [0, 1), got 1 (1 would remove every head)"),
        ({"ffn": -0.1}, "ffn must be a fraction in [0, 1), got -0.1"),
        ({"target": 0.2, "ffn": 0.1}, "give either target or heads/ffn, not both"),
        ({}, "nothing to remove"),
        ({"ffn": 0.2, "importance": "l2"}, "importance 'l2' is not one of: fused"),
        ({"ffn": 0.2, "ratios": "owl"}, "ratios 'owl' is not one of: adaptive"),
        ({"ffn": 0.2, "multiple": 0}, "multiple must be a whole number ≥ 1, got 0"),
        ({"ffn": 0.2, "max_ratio": 0}, "max_ratio must be in (0, 1], got 0"),
    ],
)
def test_bad_options_are_one_line(options, message):
    with pytest.raises(PrunekitError) as err:
        SaapConfig.parse(options)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        # 2 kv groups per block and one must stay: at most half the head parameters can go
        (SaapConfig(heads=0.6), "structured heads (ratios adaptive) asks for"),
        (SaapConfig(ffn=0.5, ratios="skip", skip_first=2, skip_last=0), "at most"),
        (SaapConfig(ffn=0.5, ratios="skip", skip_first=2, skip_last=1), "leaves no block"),
        (SaapConfig(target=0.95), "structured target 0.95, its heads share (ratios adaptive)"),
        (SaapConfig(target=0.995), "more than the attention and MLP groups hold"),
        # max_ratio 1 lifts the ratio cap: the floors alone must hold (llama: 3 blocks; a head
        # group costs (16 + 8 + 8) · 32 + 32 · 16 = 1,536, a channel 3 · 32 = 96)
        (SaapConfig(heads=0.6, max_ratio=1.0), "at most 4,608 can go"),  # 1 of 2 kv groups stays
        (SaapConfig(ffn=0.6, max_ratio=1.0, min_channels=30), "at most 9,792 can go"),  # 34 of 64
        # min_channels 20 in steps of 8 keeps 24: 40 of 64 may go
        (SaapConfig(ffn=0.65, max_ratio=1.0, min_channels=20, multiple=8), "at most 11,520 can go"),
    ],
)
def test_impossible_budgets_fail_before_scoring(cfg, message):
    model = tiny_family_model("llama")
    adapter = adapter_for(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PrunekitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_budget(model, adapter, cfg)
    with pytest.raises(PrunekitError):
        prune_structured(RunContext(model, adapter, [], progress=False), cfg)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_ratio_plot_is_written(tmp_path):
    from prunekit.reports.structured_plots import write_ratio_plot

    model = tiny_family_model("llama")
    rep = prune_structured(
        RunContext(model, adapter_for(model), _batches(), progress=False),
        SaapConfig(heads=0.3, ffn=0.3),
    )
    path = write_ratio_plot(rep, tmp_path / "structured_ratios.png")
    assert path.stat().st_size > 1000


def test_one_gradient_pass_scored_once_and_applied_to_copies_equals_prune_structured():
    from prunekit.structural.saap import apply_scores, score_groups

    dense = tiny_family_model("qwen2")
    adapter = adapter_for(dense)
    stats = accumulate_gradients(RunContext(dense, adapter, _batches(), progress=False))
    for importance in ("taylor_vector", "fused"):
        for ratios in ("uniform", "adaptive"):
            cfg = SaapConfig(heads=0.3, ffn=0.4, importance=importance, ratios=ratios)
            scored = score_groups(RunContext(dense, adapter, [], progress=False), cfg, stats)
            shared = copy.deepcopy(dense)
            rep_shared = apply_scores(RunContext(shared, adapter, []), cfg, scored)
            direct = copy.deepcopy(dense)
            rep_direct = prune_structured(
                RunContext(direct, adapter, _batches(), progress=False), cfg
            )
            assert (
                rep_shared["kinds"]["heads"]["groups_after"]
                == rep_direct["kinds"]["heads"]["groups_after"]
            )
            with torch.no_grad():
                assert torch.equal(shared(IDS).logits, direct(IDS).logits)


def test_skip_defaults_are_llm_pruners_scaled_to_24_blocks():
    """LLM-Pruner skips 4 first / 2 last of LLaMA-7B's 32 blocks: 3 first / 1 last of 24."""
    cfg = SaapConfig(ffn=0.2, ratios="skip")
    scores = [torch.ones(2)] * 24
    weights = layer_weights("skip", scores, 0.0, cfg.skip_first, cfg.skip_last)
    assert [i for i, w in enumerate(weights) if w == 0] == [0, 1, 2, 23]
    assert layer_weights("skip", scores) == weights


@pytest.mark.parametrize("ratios", ["adaptive", "stable"])
def test_block_weights_are_the_spread_of_fused_scores_without_their_constant(ratios):
    """The report's per-block weights, recomputed by hand from the two Taylor scores: fused
    f = v/(2·mean v) + e/(2·mean e) over all blocks (no log σ), CV = pstdev/mean per block."""
    model = tiny_family_model("llama")
    adapter = adapter_for(model)
    ref = copy.deepcopy(model)
    stats = accumulate_gradients(RunContext(ref, adapter, _batches(), progress=False))
    rep = prune_structured(
        RunContext(model, adapter, _batches(), progress=False),
        SaapConfig(heads=0.3, ffn=0.3, ratios=ratios),
    )
    layers = adapter.layers(ref)
    for name, kind in (("heads", HeadGroups(adapter)), ("ffn", ChannelGroups(adapter))):
        vec = [s.tolist() for s in kind_scores(layers, kind, TaylorVector(), stats)[0]]
        elem = [s.tolist() for s in kind_scores(layers, kind, TaylorElement(), stats)[0]]
        mean_v = statistics.fmean(x for block in vec for x in block)
        mean_e = statistics.fmean(x for block in elem for x in block)
        cv = []
        for v, e in zip(vec, elem):
            f = [a / (2 * mean_v) + b / (2 * mean_e) for a, b in zip(v, e)]
            cv.append(statistics.pstdev(f) / statistics.fmean(f))
        mean_cv = statistics.fmean(cv)
        want = [c / mean_cv if ratios == "adaptive" else mean_cv / c for c in cv]
        assert rep["kinds"][name]["weights"] == pytest.approx(want, rel=1e-6), name
