"""`decode=` budgets: the cost model is additive over measured per-layer times and monotone in
the levels, bad speedups are one line naming --budget before the model loads, and a tiny search
returns a plan whose predicted speedup meets the bound (timings checked for structure only); a
decode_context beyond the model's context length is one line before any timing."""

from __future__ import annotations

import json

import pytest
from tests.conftest import tiny_model
from tests.search.search_helpers import SMALL, tiny_lm

import prunekit
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.search.budget import parse_budget
from prunekit.search.config import SearchConfig
from prunekit.search.decode_time import DecodeTimes, DecodeTiming, measure_decode_times
from prunekit.search.levels import build_space
from prunekit.search.run import check_decode_context, measure_budget


@pytest.fixture(scope="module")
def timed():
    model = tiny_model("qwen3")
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.5), (1.0, 0.5), 8, True)
    times = measure_decode_times(model, adapter, space, DecodeTiming(context=16, steps=3))
    return model, adapter, space, times


def test_cost_model_is_additive_and_monotone(timed):
    _, _, space, times = timed
    n = len(space.layers)
    assert [len(t) for t in times.layers] == [len(s.variants) for s in space.layers]
    assert times.fixed >= 0 and times.threads >= 1 and times.shapes_timed >= 1
    genome = [s.top - 1 for s in space.layers]
    assert times.predict(genome) == times.fixed + sum(t[g] for t, g in zip(times.layers, genome))
    for t, s in zip(times.layers, space.layers):
        assert t == sorted(t, reverse=True) and t[s.top] == 0 and t[0] > 0  # drop: top level
    for i in range(n):
        dropped = [0] * n
        dropped[i] = space.layers[i].top
        assert times.predict(dropped) < times.predict([0] * n)  # removing a layer is faster
    assert times.speedup([0] * n) == 1


def test_decode_budget_bounds_the_predicted_time(timed):
    model, adapter, space, times = timed
    m = measure_budget(model, adapter, space, parse_budget("decode=1.25x"), times)
    dense = [0] * len(space.layers)
    assert m.unit == "predicted decode ns/token" and m.value_of(dense) == times.predict(dense)
    assert m.limit + m.fixed == pytest.approx(times.predict(dense) / 1.25)
    assert [s.costs for s in m.space.layers] == times.layers
    assert [s.variants for s in m.space.layers] == [s.variants for s in space.layers]


def test_times_survive_the_work_folder(timed, tmp_path):
    from prunekit.search.decode_time import load_times, save_times

    times = timed[3]
    save_times(tmp_path, {"budget": "decode=1.25x"}, times)
    assert load_times(tmp_path, {"budget": "decode=1.25x"}) == times
    assert load_times(tmp_path, {"budget": "decode=2x"}) is None


@pytest.mark.parametrize("budget", ["decode=0.9x", "decode=abc"])
def test_bad_decode_budget_is_one_line_before_the_model_loads(
    tiny_model_dir, tmp_path, capsys, monkeypatch, budget
):
    def no_loading(*a, **k):
        raise AssertionError("model loaded")

    monkeypatch.setattr("prunekit.cli.common.load_reported", no_loading)
    out = tmp_path / "out"
    assert main(["search", str(tiny_model_dir), "--budget", budget, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"prunekit: error: --budget '{budget}'")
    assert "decode=1.25x" in err[0] and not out.exists()


def test_search_with_a_decode_budget_meets_the_predicted_speedup(tiny_model_dir, answering):
    model, tok = tiny_lm(tiny_model_dir)
    result = prunekit.search(
        model, tok, budget="decode=1.25x", decode_context=32, max_generations=2, **SMALL
    )
    s = result.report["search"]
    decode = s["decode"]
    assert decode["predicted_speedup"] >= 1.25
    assert s["budget"]["chosen"] <= s["budget"]["limit"]
    assert decode["predicted_chosen_ns"] == s["budget"]["chosen"]
    times = DecodeTimes(
        decode["layer_ns"], decode["fixed_ns"], 32, decode["threads"], decode["dtype"], 1
    )
    assert times.speedup(s["best"]["levels"]) == pytest.approx(decode["predicted_speedup"])
    for key in ("measured_dense_tokens_per_s", "measured_chosen_tokens_per_s", "measured_speedup"):
        assert decode[key] > 0  # measured, not asserted: speed belongs to the benchmarks
    assert "machine" in decode["note"]
    assert json.loads(json.dumps(result.plan))["budget"]["unit"] == "predicted decode ns/token"
    from prunekit.search.report import render_markdown

    assert "decode speedup of the chosen model: predicted" in render_markdown(result.report)


def test_decode_context_must_fit_the_model(tiny_model_dir, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("expensive work started")

    monkeypatch.setattr("prunekit.search.run._calibration", no_work)
    monkeypatch.setattr("prunekit.search.run.measure_decode_times", no_work)
    model, tok = tiny_lm(tiny_model_dir)  # max_position_embeddings 256
    with pytest.raises(PrunekitError) as info:
        prunekit.search(model, tok, budget="decode=1.25x", decode_context=241, **SMALL)
    assert str(info.value) == (
        "decode_context 241 plus 16 decoded tokens exceeds the model's context length 256 "
        "(max_position_embeddings); give decode_context at most 240"
    )
    fits = SearchConfig(budget="decode=1.25x", decode_context=240)
    check_decode_context(model, fits, parse_budget(fits.budget))
    params = SearchConfig(budget="params=0.8", decode_context=4096)  # not timed: not checked
    check_decode_context(model, params, parse_budget(params.budget))
