"""SAAP's option checks, per-block limits, budgets and report on hand values (no gradient pass:
scores are given by hand), for mutants the end-to-end tests in test_saap.py let through."""

from __future__ import annotations

import copy

import pytest
import torch

from models.tiny_families import tiny_family_model
from prunekit.calibration.context import RunContext
from prunekit.config import Surface
from prunekit.config.structured import StructuredConfig
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.structural.groups import ChannelGroups
from prunekit.structural.saap import (
    GroupScores,
    SaapConfig,
    apply_scores,
    budgets,
    check_budget,
    plan_blocks,
)

# tiny llama (tests/conftest.py TINY): 3 blocks, hidden 32, 2 kv groups of 2 query heads of 8,
# MLP width 64, untied 128-token embedding and head.
# A head group: q rows 16·32 + k, v rows 2·8·32 + o columns 32·16 = 1,536; a channel 3·32 = 96.
# Non-embedding: 3 · (attention 3,072 + MLP 6,144 + 2 norms 64) + final norm 32 = 27,872.
HEAD_COST, CHANNEL_COST, NON_EMBEDDING, EMBEDDINGS = 1536, 96, 27872, 2 * 128 * 32


def _llama():
    model = tiny_family_model("llama")
    return model, adapter_for(model)


@pytest.mark.parametrize(
    "options",
    [
        {"heads": 0, "ffn": 0.2},
        {"heads": 0.5, "skip_first": 0, "skip_last": 0, "multiple": 1, "min_channels": 1},
        {"ffn": 0.1, "max_ratio": 1},
        {"ffn": 0.1, "samples": 32, "seq_len": 64},  # a recipe step's calibration options
    ],
)
def test_options_at_their_bounds_are_valid(options):
    """Zero fractions, skips of 0, multiple and min_channels of 1, max_ratio 1, and options
    that belong to other parts of a recipe step are all accepted."""
    cfg = StructuredConfig.parse(options, Surface.RECIPE)
    assert {k: getattr(cfg, k) for k in options if k in SaapConfig.model_fields} == {
        k: v for k, v in options.items() if k not in ("samples", "seq_len")
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heads": False, "ffn": 0.2}, "heads must be a fraction in [0, 1), got False"),
        ({"ffn": 1.0}, "ffn must be a fraction in [0, 1), got 1"),
        ({"target": 0.2, "heads": 0.1}, "give either target or heads/ffn, not both"),
        ({"heads": 0.0, "ffn": 0.0}, "nothing to remove"),
        ({"ffn": 0.2, "skip_last": -1}, "skip_last must be a whole number ≥ 0, got -1"),
        (
            {"ffn": 0.2, "skip_first": 1.5},
            "skip_first must be a whole number ≥ 0, got 1.5",
        ),
        (
            {"ffn": 0.2, "min_channels": 0},
            "min_channels must be a whole number ≥ 1, got 0",
        ),
        (
            {"ffn": 0.2, "multiple": True},
            "multiple must be a whole number ≥ 1, got True",
        ),
        ({"ffn": 0.2, "max_ratio": True}, "max_ratio must be in (0, 1], got True"),
        ({"ffn": 0.2, "max_ratio": 1.01}, "max_ratio must be in (0, 1], got 1.01"),
    ],
)
def test_options_past_their_bounds_are_one_exact_line(options, message):
    """Booleans are not numbers, 1 is no fraction, the heads-only hint stays with heads."""
    with pytest.raises(PrunekitError) as err:
        SaapConfig.parse(options)
    assert str(err.value).startswith(message)
    assert "would remove every head" not in str(err.value)


def test_plan_blocks_per_kind_with_steps_floors_and_an_uneven_block():
    """Block 1 cut to 60 channels first. Heads: step 1, one kv group must stay (cap 1 of 2).
    Channels in steps of 8 with min_channels 20 → 24 stay: caps min(⌊0.9·64⌋, 64 − 24) = 40
    and min(⌊0.9·60⌋, 60 − 24) = 36 → 32 (whole steps)."""
    model, adapter = _llama()
    ChannelGroups(adapter).keep(adapter.layers(model)[1], torch.arange(60))
    cfg = SaapConfig(heads=0.3, ffn=0.3, multiple=8, min_channels=20, max_ratio=0.9)
    blocks = plan_blocks(model, adapter, cfg)
    heads, ffn = blocks["heads"], blocks["ffn"]
    assert (heads.counts, heads.costs, heads.caps, heads.step) == (
        [2] * 3,
        [HEAD_COST] * 3,
        [1] * 3,
        1,
    )
    assert (ffn.counts, ffn.costs, ffn.caps, ffn.step) == (
        [64, 60, 64],
        [CHANNEL_COST] * 3,
        [40, 32, 40],
        8,
    )
    # max_ratio 0.5 binds instead: ⌊32⌋ → 32 and ⌊30⌋ → 24
    ffn = plan_blocks(model, adapter, SaapConfig(ffn=0.3, max_ratio=0.5, multiple=8))["ffn"]
    assert ffn.caps == [32, 24, 32]


def test_budgets_by_hand():
    """Per-kind fractions of each kind's total; a target is one fraction f of both kinds with
    f = target · non-embedding / (head-group + channel parameters)."""
    model, adapter = _llama()
    heads_total, ffn_total = 3 * 2 * HEAD_COST, 3 * 64 * CHANNEL_COST  # 9,216 and 18,432
    cfg = SaapConfig(heads=0.25)
    assert budgets(model, adapter, cfg, plan_blocks(model, adapter, cfg)) == {
        "heads": 2304.0,
        "ffn": 0.0,
    }
    cfg = SaapConfig(target=0.5)
    got = budgets(model, adapter, cfg, plan_blocks(model, adapter, cfg))
    f = 0.5 * NON_EMBEDDING / (heads_total + ffn_total)
    assert got == pytest.approx({"heads": f * heads_total, "ffn": f * ffn_total}, rel=1e-12)
    cfg = SaapConfig(target=0.995)  # f = 1.003
    with pytest.raises(PrunekitError, match=r"than the attention and MLP groups hold \(27,648\)"):
        budgets(model, adapter, cfg, plan_blocks(model, adapter, cfg))


def test_check_budget_skips_the_first_and_the_last_blocks_it_is_told():
    """Blocks of 64, 64 and 20 channels, ffn 0.6 of 148 · 96 = 8,524.8 parameters: skipping the
    last block leaves 51 + 51 channels (9,792 parameters) to take it; skipping the first leaves
    51 + 16 (6,432), too few."""
    model, adapter = _llama()
    ChannelGroups(adapter).keep(adapter.layers(model)[2], torch.arange(20))
    check_budget(model, adapter, SaapConfig(ffn=0.6, ratios="skip", skip_first=0, skip_last=1))
    with pytest.raises(PrunekitError, match="at most 6,432 can go"):
        check_budget(model, adapter, SaapConfig(ffn=0.6, ratios="skip", skip_first=1, skip_last=0))


@torch.no_grad()
def test_apply_scores_removes_the_lowest_hand_scores_and_reports_by_hand():
    """Hand scores, ffn 0.26 (4,792.32 parameters = 49.92 channels), the last block skipped:
    blocks 0 and 1 lose their 25 lowest-scored channels each (4,800 parameters, the closest whole
    channels), block 2 none; every report field by hand."""
    model, adapter = _llama()
    dense = copy.deepcopy(model)
    g = torch.Generator().manual_seed(5)
    scores = [torch.randperm(64, generator=g).float() for _ in range(3)]
    cfg = SaapConfig(ffn=0.26, ratios="skip", skip_first=0, skip_last=1)
    info = {"by": "hand"}
    section = apply_scores(
        RunContext(model, adapter, []), cfg, GroupScores({"ffn": (scores, info, 0.5)})
    )

    assert section["kinds"]["ffn"] == {
        "groups_before": [64, 64, 64],
        "groups_after": [39, 39, 64],
        "ratio": [0.390625, 0.390625, 0.0],
        "weights": [1.0, 1.0, 0.0],
        "group_cost": [CHANNEL_COST] * 3,
        "step": 1,
        "target_params": 4792,
        "removed_params": 4800,
        "importance": info,
        "score_offset": 0.5,
    }
    assert list(section["kinds"]) == ["ffn"]
    before = {"total": NON_EMBEDDING + EMBEDDINGS, "non_embedding": NON_EMBEDDING}
    after = {k: v - 4800 for k, v in before.items()}
    assert (section["params_before"], section["params_after"]) == (before, after)
    assert section["uniform"] is False
    assert section["config"]["skip_last"] == 1 and section["config"]["ffn"] == 0.26

    for i, (layer, ref) in enumerate(zip(adapter.layers(model), adapter.layers(dense))):
        n = (39, 39, 64)[i]
        kept = sorted(sorted(range(64), key=lambda j: -scores[i][j])[:n])
        assert torch.equal(layer.mlp.down_proj.weight, ref.mlp.down_proj.weight[:, kept])
        assert torch.equal(layer.mlp.gate_proj.weight, ref.mlp.gate_proj.weight[kept])
        assert torch.equal(layer.mlp.up_proj.weight, ref.mlp.up_proj.weight[kept])
        assert torch.equal(layer.self_attn.o_proj.weight, ref.self_attn.o_proj.weight)
