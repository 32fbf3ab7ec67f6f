"""Recipe steps with training-free repair: `depth: {repair: linear, selection: run}` and
`width: {refit: true}` run end to end, change what they claim (and only with the option on), and
bad options are one line before loading."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.recipes import validate

BASE = {"model": "qwen2.5-coder-0.5b"}


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.py"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path.write_text("".join((stdlib / n).read_text() for n in ("bisect.py", "heapq.py")))
    return path


def _run(tmp_path, model_dir, corpus, step: dict, name: str) -> tuple[dict, dict]:
    data = {
        "model": str(model_dir),
        "calibration": {"source": str(corpus), "samples": 8, "seq_len": 32, "seed": 0},
        "steps": [step],
        "evaluate": {"perplexity": []},
    }
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / name
    assert main(["run", str(recipe), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    return report["steps"][0], load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"depth": {"remove": 1, "repair": "cubic"}}, "repair 'cubic' is not one of: none, linear"),
        ({"depth": {"remove": 1, "selection": "best"}}, "selection 'best' is not one of"),
        ({"depth": {"layers": [1], "selection": "run"}}, "with layers: \\[...\\] leave it out"),
        ({"depth": {"remove": 1, "ridge": -1}}, "ridge must be a finite number ≥ 0"),
        ({"depth": {"remove": 1, "prior": "one"}}, "prior 'one' is not one of"),
        ({"width": {"ffn_keep": 0.5, "refit": "yes"}}, "refit must be true or false"),
        ({"width": {"ffn_keep": 0.5, "refit_damp": -0.1}}, "refit_damp must be a finite number"),
        ({"structured": {"heads": 0.5, "refit": 1}}, "refit must be true or false"),
    ],
)
def test_bad_repair_options_are_one_line(step, message):
    with pytest.raises(PrunekitError, match=message) as err:
        validate({**BASE, "steps": [step]})
    assert "\n" not in str(err.value)


def test_depth_repair_folds_into_the_block_before_the_run(tmp_path, tiny_model_dir, corpus):
    """Given layer 1 of 3 with repair: layer 0's down_proj changes (T folded in), nothing else
    of layers 0/2 does; without repair every kept weight is the original."""
    before = load_file(str(next(tiny_model_dir.glob("*.safetensors"))))
    plain, w_plain = _run(tmp_path, tiny_model_dir, corpus, {"depth": {"layers": [1]}}, "plain")
    step = {"depth": {"layers": [1], "repair": "linear"}}
    fixed, w_fixed = _run(tmp_path, tiny_model_dir, corpus, step, "fixed")
    down = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(w_plain[down], before[down])
    assert not torch.allclose(w_fixed[down], before[down])
    for k, v in w_fixed.items():
        if k != down:
            assert torch.equal(v, w_plain[k]), k
    (run,) = fixed["runs_repaired"]
    assert run["run"] == [1, 2] and run["layer"] == 0
    assert run["fit_after"] < run["fit_before"]
    assert plain["repair"] == "none" and "runs_repaired" not in plain


def test_depth_run_selection_with_repair(tmp_path, tiny_model_dir, corpus):
    step = {"depth": {"remove": 1, "selection": "run", "repair": "linear", "criterion": "cosine"}}
    rep, weights = _run(tmp_path, tiny_model_dir, corpus, step, "run")
    assert rep["selection"] == "run" and rep["layers_after"] == 2
    assert rep["removed"][0] >= 1  # a repaired run never starts at layer 0
    assert set(rep["run_scores"]["scores"]) == {"1", "2"}
    assert len(rep["runs_repaired"]) == 1
    assert not any(k.startswith("model.layers.2.") for k in weights)


def test_width_refit_changes_only_the_down_projections(tmp_path, tiny_model_dir, corpus):
    step = {"width": {"ffn_keep": 0.5, "multiple": 1}}
    plain, w_plain = _run(tmp_path, tiny_model_dir, corpus, step, "w")
    step = {"width": {"ffn_keep": 0.5, "multiple": 1, "refit": True}}
    fixed, w_fixed = _run(tmp_path, tiny_model_dir, corpus, step, "wr")
    assert plain["refit"] is False and fixed["refit"] is True
    for k, v in w_fixed.items():
        assert v.shape == w_plain[k].shape
        assert torch.equal(v, w_plain[k]) != k.endswith("down_proj.weight"), k
    errors = fixed["refit_error"]
    assert all(a <= b + 1e-12 for a, b in zip(errors["after"], errors["before"]))
