"""Budgets: parsing (one line for bad text), the layer bound they give, and refusal of budgets
the dense model already meets or no candidate can."""

from __future__ import annotations

import pytest
from tests.conftest import tiny_model

from prunekit.errors import PrunekitError
from prunekit.models.adapters import adapter_for
from prunekit.search.budget import parse_budget
from prunekit.search.levels import build_space
from prunekit.search.run import measure_budget
from prunekit.structural.saap import non_embedding


@pytest.mark.parametrize(
    ("text", "kind", "value", "fraction"),
    [
        ("params=0.8", "params", 0.8, True),
        ("params=1", "params", 1.0, True),
        ("params=318.5M", "params", 318.5e6, False),
        ("PARAMS = 2k", "params", 2000.0, False),
        ("size=300MB", "size", 300e6, False),
        ("size=1.5GiB", "size", 1.5 * 2**30, False),
        ("size=4096", "size", 4096.0, False),
        ("decode=1.25x", "decode", 1.25, False),
        ("DECODE = 2", "decode", 2.0, False),
    ],
)
def test_parse(text, kind, value, fraction):
    b = parse_budget(text)
    assert (b.kind, b.fraction) == (kind, fraction)
    assert b.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("params", "cannot read budget 'params'"),
        ("params=", "cannot read budget"),
        ("params=abc", "cannot read budget"),
        ("params=0", r"fraction must be in \(0, 1\]"),
        ("params=3Q", "params takes a fraction"),
        ("size=300XB", "size takes a positive size"),
        ("flops=0.5", "unknown budget kind 'flops'"),
        ("decode=0.9x", r"budget 'decode=0.9x': decode takes .* above 1 such as decode=1.25x"),
        ("decode=1x", "a number above 1"),
        ("decode=abc", r"budget 'decode=abc': decode takes .* such as decode=1.25x"),
        ("decode=1.25MB", "a number above 1"),
    ],
)
def test_bad_budgets_are_one_line(text, message):
    with pytest.raises(PrunekitError, match=message) as err:
        parse_budget(text)
    assert "\n" not in str(err.value)


def test_limits_in_layer_parameters():
    model = tiny_model("llama")
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.5), (1.0,), 8, True)
    layers = sum(p.numel() for p in adapter.layers(model).parameters())
    non_emb = non_embedding(model, adapter)
    m = measure_budget(model, adapter, space, parse_budget("params=0.6"))
    assert m.limit == pytest.approx(0.6 * non_emb - (non_emb - layers))
    assert m.value(space.cost([0, 0, 0])) == non_emb
    total = sum(p.numel() for p in model.parameters())
    size = measure_budget(model, adapter, space, parse_budget(f"size={int(total * 4 * 0.9)}"))
    assert size.value(space.cost([0, 0, 0])) == total * 4  # float32 bytes
    assert size.limit == pytest.approx(total * 0.9 - (total - layers), abs=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [("params=1", "already fits"), ("params=0.01", "is impossible with these levels")],
)
def test_budgets_that_leave_nothing_to_search(text, message):
    model = tiny_model("llama")
    adapter = adapter_for(model)
    space = build_space(model, adapter, (1.0, 0.5), (1.0,), 8, False)
    with pytest.raises(PrunekitError, match=message):
        measure_budget(model, adapter, space, parse_budget(text))
