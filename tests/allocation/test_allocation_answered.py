"""OWL and NeuroAL calibrated on the model's own answers (`answered:CORPUS`) and on mixtures, end to
end on the tiny fixture model: the CLI, recipes and the API take them; OWL's ratios on sequences of
several lengths equal a brute force."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from test_neuroal_ragged import ragged, weighted_sq
from transformers import AutoModelForCausalLM, AutoTokenizer

import prunekit
from conftest import tiny_model
from prunekit.allocation.build import build_allocation, check_allocation
from prunekit.calibration.context import RunContext
from prunekit.calibration.sets import build_calibration
from prunekit.cli import main
from prunekit.config.prune import PruneConfig
from prunekit.methods.patterns import UNSTRUCTURED
from prunekit.methods.pruners import get_pruner
from prunekit.models.adapters import adapter_for
from prunekit.recipes import validate

SMALL = ["--calib-samples", "6", "--seq-len", "128", "--batch-size", "2"]
NEUROAL = ["--allocation", "neuroal", "--neuroal-samples", "4", "--neuroal-grid", "coarse"]


@pytest.fixture
def folder(tmp_path):
    """Functions of different lengths: answers of different lengths (75 to 128 tokens here)."""
    path = tmp_path / "funcs"
    path.mkdir()
    (path / "funcs.py").write_text(
        "\n\n".join(
            f'def scale{i}(values):\n    """Multiply every value by {i}."""\n'
            + "    values = list(values)\n" * i
            + f"    out = [v * {i} for v in values]\n    return out\n"
            for i in range(8)
        )
    )
    return path


@pytest.fixture
def answers(monkeypatch, tmp_path):
    """Every instruction answered with the corpus's own function (no generation, no sandbox)."""
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))

    def fake(items, corpus, model, tokenizer, root, *args, **kwargs):
        n = len(items)
        kept = {i.source: i.response for i in items}
        return kept, {"cache": "stub", "from_cache": True, "asked": n, "kept": n, "verdicts": {}}

    monkeypatch.setattr("prunekit.recovery.answers.teacher_answers", fake)


@pytest.mark.parametrize("calib", ["answered:{folder}", "python,answered:{folder}"])
def test_cli_prunes_with_neuroal_on_answers(tmp_path, tiny_model_dir, folder, answers, calib):
    out = tmp_path / "out"
    spec = calib.format(folder=folder)
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.6", "--calib", spec, *SMALL, *NEUROAL]
    assert main([*argv, "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    parts = report["calibration"]["parts"]
    assert parts[-1]["kind"] == "answered" and sum(p["sequences"] for p in parts) == 6
    search = report["allocation"]["search"]
    assert search["search_windows"] == 4  # answers weighted on their answer tokens:
    assert 0 < search["search_scored_tokens"] < search["search_tokens"]
    assert search["block_step"]["chosen_lambda"] is not None
    assert abs(report["sparsity"]["achieved"] - 0.6) < 1e-3


@pytest.mark.parametrize("calib", ["answered:python", "python,answered:python"])
def test_config_and_recipe_accept_neuroal_with_answers(calib):
    cfg = PruneConfig(sparsity=0.5, allocation="neuroal", calib=calib)
    assert cfg.allocation == "neuroal" and cfg.calib == calib
    step = {"unstructured": {"sparsity": 0.5, "allocation": "neuroal", "source": calib}}
    assert validate({"model": "m", "steps": [step]}).steps[0].options["source"] == calib


def test_api_mixture_searches_both_parts(tiny_model_dir, folder, answers):
    """The search subset spreads over the mixture: corpus windows and answers both in it."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = f"python,answered:{folder}"
    cal = build_calibration(
        spec, model, tok, samples=8, seq_len=128, seed=0, batch_size=2, progress=False
    )
    assert cal.ragged
    rows = [r for b in cal.batches for r in b]
    weights = [r for w in cal.weights for r in w]
    picks = (0, 2, 4, 6)  # 4 of 8 spread evenly: corpus windows 0 and 2, answers 0 and 2
    assert all(bool((weights[i] == 1).all()) == (i < 4) for i in picks)  # windows, then answers
    result = prunekit.prune(
        model,
        tok,
        method="wanda",
        sparsity=0.6,
        allocation="neuroal",
        allocation_options={"samples": 4, "block_lambdas": [0.05, 0.2], "row_lambdas": [0.0]},
        calib=spec,
        calib_samples=8,
        seq_len=128,
        batch_size=2,
        progress=False,
    )
    search = result.report["allocation"]["search"]
    assert search["search_tokens"] == sum(rows[i].numel() for i in picks)
    assert search["search_scored_tokens"] == sum(int(weights[i].sum()) for i in picks)
    assert search["search_scored_tokens"] < search["search_tokens"]  # the prompts are not scored
    assert abs(result.report["sparsity"]["achieved"] - 0.6) < 1e-3


@pytest.mark.parametrize("calib", ["answered:{folder}", "python,answered:{folder}"])
def test_owl_on_answers_end_to_end(tiny_model_dir, folder, answers, calib):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rep = prunekit.prune(
        model,
        tok,
        method="wanda",
        sparsity=0.5,
        allocation="owl",
        calib=calib.format(folder=folder),
        calib_samples=6,
        seq_len=128,
        batch_size=2,
        progress=False,
    ).report
    assert rep["calibration"]["parts"][-1]["kind"] == "answered"
    assert abs(rep["sparsity"]["achieved"] - 0.5) < 1e-3
    assert max(rep["allocation"]["block_sparsity"]) > min(rep["allocation"]["block_sparsity"])


def test_owl_ratios_on_sequences_of_several_lengths_equal_a_brute_force():
    """OWL pools Wanda scores over every token of every sequence (unweighted, as Wanda): the
    engine on a 2 × 24 batch plus answers of 17 and 11 tokens equals whole-model forwards of
    each sequence alone."""
    model = tiny_model("qwen2", seed=4)
    batches, weights = ragged()
    sq = weighted_sq(copy.deepcopy(model), [row for b in batches for row in b], None)
    adapter = adapter_for(model)
    expected = []
    for b, layer in enumerate(adapter.layers(model)):
        scores = torch.cat(
            [
                (lin.weight.double().abs() * sq[f"layers.{b}.{n}"].sqrt()).flatten()
                for n, lin in adapter.linears(layer).items()
            ]
        )
        expected.append(float((scores > 3.0 * scores.mean()).double().mean()))
    assert max(expected) > min(expected) > 0
    run = RunContext(model, adapter, batches, progress=False)
    opts = check_allocation("owl", {"m": 3.0}, UNSTRUCTURED)
    for w in (None, weights):  # OWL reads every token alike: weights change nothing
        _, rep = build_allocation("owl", opts, run, get_pruner("wanda"), UNSTRUCTURED, 0.5, w)
        assert rep["outlier_ratio"] == pytest.approx(expected, abs=1e-6)


def test_recipe_runs_neuroal_on_a_mixture(tmp_path, tiny_model_dir, folder, answers):
    step = {
        "sparsity": 0.5,
        "allocation": "neuroal",
        "allocation_options": {"samples": 4, "block_lambdas": [0.05, 0.2], "row_step": False},
        "source": f"python,answered:{folder}",
    }
    recipe = {
        "model": str(tiny_model_dir),
        "calibration": {"samples": 4, "seq_len": 128},
        "steps": [{"unstructured": step}],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    (unstructured,) = json.loads((out / "report.json").read_text())["steps"]
    assert unstructured["allocation"]["search"]["search_windows"] == 4
    assert unstructured["sparsity"]["achieved"] == pytest.approx(0.5, abs=1e-3)
