"""Allocation, NeuroAL, sub-models and the CLI ask a pruner's declarations, never its name."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunekit.allocation.build import build_allocation
from prunekit.calibration.context import RunContext
from prunekit.cli import build_parser
from prunekit.errors import PrunekitError
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import PRUNERS, Wanda
from prunekit.models.adapters import adapter_for
from prunekit.submodels.sweep import SweepConfig


class UpdatingWanda(Wanda):
    """A made-up weight-updating method: only its declarations differ from Wanda."""

    name = "updating-wanda"
    updates_weights = True
    per_row_counts = False
    search_stand_in = "magnitude"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(PRUNERS, UpdatingWanda.name, UpdatingWanda)
    return UpdatingWanda()


def test_declarations_decide_row_counts_and_the_search_stand_in(registered):
    model = tiny_model("llama")
    adapter = adapter_for(model)
    batches = [torch.randint(0, 128, (2, 12))]
    options = {
        "samples": 2,
        "row_step": False,
        "search_method": "auto",
        "grid": "coarse",
        "block_lambda": 0.05,
        "block_lambdas": None,
        "row_lambdas": None,
        "bound": True,
        "fast_masks": True,
    }
    run = RunContext(model, adapter, batches, progress=False)
    plan, report = build_allocation("neuroal", options, run, registered, UNSTRUCTURED, 0.5)
    assert report["search"]["search_method"] == "magnitude"
    assert not plan.rows  # per_row_counts = False: layer values, no row counts
    plan, _ = build_allocation("uniform", {}, run, Wanda(), UNSTRUCTURED, 0.5)
    assert plan.rows


def test_cli_choices_and_sweep_checks_come_from_the_registry(registered):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in ("prune", "submodels"):
        method = next(a for a in sub.choices[command]._actions if a.dest == "method")
        # prune lists them in its help and PruneConfig checks them; submodels has argparse check
        assert "updating-wanda" in (method.choices or method.metavar.strip("{}").split(","))
    cfg = SweepConfig([], [], method="updating-wanda", save="masks")
    with pytest.raises(PrunekitError, match="updating-wanda also updates the kept weights"):
        cfg.validate()
