"""Per-layer unstructured sparsity in the search space: a sparse variant is Wanda within the cut
layer (brute force from hooked activations), its cost is its non-zero parameters, a plan rebuilds
the same zeros, size=/decode= budgets refuse it before loading, and the default space is the
dense one of before (labels and costs recorded before sparsity existed)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tests.conftest import linear_input_norms, tiny_model
from tests.search.search_helpers import SMALL, tiny_lm

import prunekit
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.search.config import SearchConfig
from prunekit.search.levels import build_db, build_space, shape_layer, space_summary

PATHS = [f"self_attn.{n}_proj" for n in "qkvo"] + [f"mlp.{n}_proj" for n in ("gate", "up", "down")]
LEVELS = dict(ffn_levels=(1.0, 0.75, 0.5), head_levels=(1.0, 0.5), multiple=8, drop=True)


def _sparse_setup(tmp_path, sparsity=(0.0, 0.3, 0.5)):
    model = tiny_model("llama")
    adapter = adapter_for(model)
    space = build_space(model, adapter, **LEVELS, sparsity_levels=sparsity)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, model.config.vocab_size, (1, 12), generator=g) for _ in range(4)]
    db = build_db(model, adapter, seqs, space, tmp_path, False, 0.3, {"t": 1}, progress=False)
    return model, adapter, space, db, seqs


def _built(model, adapter, db, i, variant):
    layer = copy.deepcopy(adapter.layers(model)[i])
    shape_layer(layer, adapter, db, i, variant)
    return layer


def _expected_layer(model, i, db, variant, norms) -> dict[str, torch.Tensor]:
    """Brute force: the dense weights sliced to the kept groups and channels (llama: 2 kv groups
    of 2 query heads × 8; which ones: the stored rankings, checked in test_stitch), then per row
    the ⌊columns·s⌋ lowest |W|·‖X‖₂ set to 0."""
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    per_kv = cfg.num_attention_heads // cfg.num_key_value_heads
    groups = db.kept_groups(i, variant.groups).tolist()
    channels = db.kept_channels(i, variant.ffn)
    q_rows = torch.tensor([h * per_kv * hd + j for h in groups for j in range(per_kv * hd)])
    kv_rows = torch.tensor([h * hd + j for h in groups for j in range(hd)])
    rows = {"q_proj": q_rows, "k_proj": kv_rows, "v_proj": kv_rows}
    rows |= {"gate_proj": channels, "up_proj": channels}
    cols = {"o_proj": q_rows, "down_proj": channels}
    layer = model.model.layers[i]
    out = {}
    for path in PATHS:
        name = path.rpartition(".")[2]
        w = layer.get_submodule(path).weight.detach().clone()
        a = norms[f"layers.{i}.{path}"]
        if name in rows:
            w = w[rows[name]]
        if name in cols:
            w, a = w[:, cols[name]], a[cols[name]]
        scores = w.double().abs() * a[None, :]
        n = math.floor(w.shape[1] * variant.sparsity)
        for r in range(w.shape[0]):
            w[r, torch.argsort(scores[r])[:n]] = 0.0
        out[path] = w
    return out


def test_sparse_variant_is_wanda_on_the_cut_layer(tmp_path):
    model, adapter, space, db, seqs = _sparse_setup(tmp_path)
    norms = linear_input_norms(model, torch.cat(seqs), batch=1)
    checked = 0
    for i, s in enumerate(space.layers):
        for v in s.variants:
            if v.dropped or not v.sparsity:
                continue
            built = adapter.linears(_built(model, adapter, db, i, v))
            expected = _expected_layer(model, i, db, v, norms)
            assert expected.keys() == built.keys()
            for name, w in expected.items():
                assert torch.equal(built[name].weight, w), (i, v, name)
            checked += 1
    assert checked == len(space.layers) * 3 * 2 * 2  # ffn × groups × (0.3, 0.5)


def test_cost_is_the_non_zero_parameter_count(tmp_path):
    model, adapter, space, db, _ = _sparse_setup(tmp_path)
    for i, s in enumerate(space.layers):
        assert s.costs == sorted(s.costs, reverse=True) and s.variants[0].sparsity == 0
        for v, cost in zip(s.variants, s.costs):
            if v.dropped:
                continue
            layer = _built(model, adapter, db, i, v)
            assert sum(int(torch.count_nonzero(p)) for p in layer.parameters()) == cost, (i, v)
    labels = space_summary(space)[0]["variants"]
    assert "ffn0.75 s0.5" in labels and "ffn0.5 h1/2 s0.3" in labels


def test_plan_rebuilds_the_same_zeros_in_a_stock_export(tiny_model_dir, answering, tmp_path):
    from transformers import AutoModelForCausalLM

    from prunekit.search.report import save_search
    from prunekit.search.run import rebuild

    opts = {**SMALL, "ffn_levels": (1.0,), "drop": False, "sparsity_levels": (0.0, 0.5)}
    model, tok = tiny_lm(tiny_model_dir)
    result = prunekit.search(model, tok, budget="params=0.8", max_generations=2, **opts)
    out = save_search(result, tmp_path / "out")
    plan = result.plan
    sparse = [i for i, layer in enumerate(plan["layers"]) if layer["sparsity"] == 0.5]
    assert len(sparse) >= 2  # the budget cannot be met with fewer sparse layers
    assert all(" s0.5" in plan["labels"][i] for i in sparse)
    s = result.report["search"]
    assert s["budget"]["unit"] == "non-zero non-embedding parameters"
    assert abs(s["best"]["direct_fitness"] - s["best"]["fitness"]) < 1e-6  # stitched = cut

    exported = AutoModelForCausalLM.from_pretrained(out)
    assert exported.config.intermediate_size == 64 and "auto_map" not in exported.config
    again, tok2 = tiny_lm(tiny_model_dir)
    rebuild(again, tok2, plan, progress=False)
    sa, sb = exported.state_dict(), again.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    layers = exported.model.layers
    for i, layer in enumerate(layers):
        for name, linear in adapter_for(exported).linears(layer).items():
            zeros = (linear.weight == 0).sum(1)
            want = linear.in_features // 2 if i in sparse else 0
            assert bool((zeros == want).all()), (i, name)
    counted = sum(int(torch.count_nonzero(p)) for p in layers.parameters())
    counted += exported.model.norm.weight.numel()
    assert counted == s["budget"]["chosen"] <= s["budget"]["limit"]


@pytest.mark.parametrize("budget", ["size=1MB", "decode=1.25x"])
def test_sparsity_with_a_size_or_decode_budget_is_one_line_before_loading(
    tiny_model_dir, tmp_path, capsys, monkeypatch, budget
):
    def no_loading(*a, **k):
        raise AssertionError("model loaded")

    monkeypatch.setattr("prunekit.cli.common.load_reported", no_loading)
    out = tmp_path / "out"
    argv = ["search", str(tiny_model_dir), "--budget", budget, "--sparsity-levels", "0,0.5"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    kind = budget.partition("=")[0]
    assert len(err) == 1 and err[0].startswith("prunekit: error: --sparsity-levels 0,0.5 with a")
    assert f"{kind}= budget" in err[0] and "use a params= budget" in err[0]
    assert not out.exists()
    with pytest.raises(PrunekitError, match=r"^sparsity_levels 0,0.5 with a"):
        SearchConfig(budget=budget, sparsity_levels=(0.0, 0.5))
    assert SearchConfig(budget=budget).sparsity_levels == (0.0,)  # dense ladders still welcome


@pytest.mark.parametrize("bad", ["1", "-0.1", "0,x", ""])
def test_sparsity_levels_are_fractions_below_one(bad):
    with pytest.raises(PrunekitError, match=r"sparsity_levels must be numbers in \[0, 1\)"):
        SearchConfig(budget="params=0.8", sparsity_levels=bad)
    assert SearchConfig(budget="params=0.8", sparsity_levels="0.3,0.5").sparsity_levels == (
        0.3,
        0.5,
    )


# layer 0 of the tiny models with ffn 1/.75/.5/.25, heads 1/.5, multiple 8, drop: recorded from
# the search space before sparsity levels existed
BEFORE = {
    "llama": (
        ["ffn1", "ffn1 h1/2", "ffn0.75", "ffn0.75 h1/2", "ffn0.5", "ffn0.5 h1/2", "ffn0.25",
         "ffn0.25 h1/2", "drop"],
        [9280, 7744, 7744, 6208, 6208, 4672, 4672, 3136, 0],
    ),
    "qwen2": (
        ["ffn1", "ffn0.75", "ffn1 h1/2", "ffn0.5", "ffn0.75 h1/2", "ffn0.25", "ffn0.5 h1/2",
         "ffn0.25 h1/2", "drop"],
        [9344, 7808, 7776, 6272, 6240, 4736, 4704, 3168, 0],
    ),
}  # fmt: skip


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_default_sparsity_leaves_the_space_as_before(arch, tmp_path):
    model = tiny_model(arch)
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.75, 0.5, 0.25), (1.0, 0.5), 8, True)
    summary = space_summary(space)
    for layer in summary:
        assert (layer["variants"], layer["costs"]) == BEFORE[arch]
        assert all(shape["sparsity"] == 0.0 for shape in layer["variant_shapes"])
    explicit = build_space(model, adapter, (1.0, 0.75, 0.5, 0.25), (1.0, 0.5), 8, True, (0.0,))
    assert explicit == space and not space.sparse
    seqs = [torch.randint(0, model.config.vocab_size, (1, 8)) for _ in range(2)]
    db = build_db(model, adapter, seqs, space, tmp_path, False, 0.3, {}, progress=False)
    assert db.norms == [] and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert "sparsity_levels" not in SearchConfig(budget="params=0.8").fingerprint()
