"""Recipes: every validation error is one clear line before loading; a full recipe exports a plain checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.recipes import load_recipe, validate

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": "qwen2.5-coder-0.5b", "steps": [{"depth": {"remove": 2}}]}


def _with(**changes):
    return {**BASE, **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(stepz=[]), "unknown key 'stepz'; valid keys: model, dtype"),
        (
            _with(steps=[{"prune": {}}]),
            "step 1: unknown step 'prune'; valid steps: vocabulary, depth, width, structured, unstructured",
        ),
        (
            _with(steps=[{"depth": {"remove": 2, "layer": 3}}]),
            "step 1 (depth): unknown key 'layer'; valid keys: remove, layers, criterion",
        ),
        (
            _with(steps=[{"width": {"ffn_keep": 1.5}}]),
            "ffn_keep must be a number in (0, 1], got 1.5",
        ),
        (_with(steps=[{"width": {"ffn_keep": 0}}]), "ffn_keep must be a number in (0, 1], got 0"),
        (_with(steps=[{"width": {}}]), "step 1 (width): 'ffn_keep' is required"),
        (_with(steps=[{"depth": {"remove": 0}}]), "remove must be a whole number ≥ 1, got 0"),
        (
            _with(steps=[{"depth": {"remove": 2, "criterion": "l2"}}]),
            "criterion 'l2' is not one of: kl, cosine, angular",
        ),
        (
            _with(steps=[{"unstructured": {"sparsity": 0.5}}, {"depth": {"remove": 1}}]),
            "structural steps must come before 'unstructured'",
        ),
        (
            _with(steps=[{"depth": {"remove": 1}}, {"depth": {"remove": 1}}]),
            "already appears as step 1",
        ),
        (_with(steps=[{"unstructured": {"sparsity": 1.2}}]), "sparsity 1.2 is outside [0, 1)"),
        (_with(steps=[]), "'steps' must be a non-empty list"),
        (
            _with(calibration={"samples": 4, "window": 9}),
            "calibration: unknown key 'window'; valid keys: source, samples",
        ),
        (
            _with(evaluate={"perplexity": "python", "humaneva": True}),
            "evaluate: unknown key 'humaneva'",
        ),
        (
            _with(evaluate={"speed": {"prompt": 8}}),
            "evaluate.speed: unknown key 'prompt'; valid keys: prompt_len",
        ),
        (_with(evaluate={"humaneval": "yes"}), "humaneval must be true or false"),
        (
            _with(steps=[{"unstructured": {"sparsity": 0.5, "allocation": "owl2"}}]),
            "allocation 'owl2' is not one of: uniform, owl, neuroal",
        ),
        (
            _with(
                steps=[
                    {
                        "unstructured": {
                            "sparsity": 0.5,
                            "allocation": "owl",
                            "allocation_options": {"grid": "coarse"},
                        }
                    }
                ]
            ),
            "step 1 (unstructured): unknown option(s) grid for allocation 'owl'; allowed: m, lambda",
        ),
        (
            _with(steps=[{"unstructured": {"pattern": "2:4", "allocation": "neuroal"}}]),
            "an N:M pattern fixes it at 2/4 everywhere",
        ),
        ({"steps": [{"depth": {"remove": 1}}]}, "'model' is required"),
    ],
)
def test_validation_errors_are_one_line(data, message):
    with pytest.raises(PrunekitError) as err:
        validate(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_and_shipped_recipes_validate():
    r = validate(_with(steps=["vocabulary", {"width": {"ffn_keep": 0.5}}]))
    assert [s.name for s in r.steps] == ["vocabulary", "width"]
    assert r.steps[1].options == {
        "ffn_keep": 0.5,
        "criterion": "output",
        "multiple": 64,
        "refit": False,
        "refit_damp": 0.3,
        "source": None,
        "samples": None,
        "seq_len": None,
    }
    alloc = {"allocation": "neuroal", "allocation_options": {"grid": "coarse"}}
    options = validate(_with(steps=[{"unstructured": {"sparsity": 0.6, **alloc}}])).steps[0].options
    assert options["allocation_options"]["grid"] == "coarse"
    assert options["allocation_options"]["samples"] == 8  # the allocation's defaults filled in
    shipped = sorted((REPO / "recipes").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"seed_structural", "vocabulary", "depth", "width"}
    for path in shipped:
        load_recipe(path)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\nsteps: [depth: {remove: 2}\n")
    with pytest.raises(PrunekitError, match="not valid YAML at line"):
        load_recipe(bad)
    with pytest.raises(PrunekitError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.fixture
def corpus(tmp_path):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path = tmp_path / "corpus.py"
    path.write_text(
        "\n\n".join((stdlib / n).read_text() for n in ("textwrap.py", "bisect.py", "heapq.py"))
    )
    return path


@pytest.fixture
def small_corpus(tmp_path):
    path = tmp_path / "bisect_only.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "bisect.py").read_text())
    return path


def _recipe(tmp_path, tiny_model_dir, corpus, steps, evaluate=None):
    data = {
        "model": str(tiny_model_dir),
        "calibration": {
            "source": str(corpus),
            "samples": 4,
            "seq_len": 32,
            "seed": 0,
            "batch_size": 2,
        },
        "steps": steps,
        "evaluate": evaluate
        or {
            "perplexity": [str(corpus)],
            "ppl_seq_len": 32,
            "ppl_tokens": 256,
            "speed": {"prompt_len": 8, "decode_steps": 2, "repeats": 1},
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_full_recipe_exports_a_plain_smaller_checkpoint(
    tmp_path, tiny_model_dir, corpus, small_corpus
):
    steps = [
        {"vocabulary": {"corpus": str(small_corpus)}},
        {"depth": {"remove": 1, "criterion": "kl"}},
        {"width": {"ffn_keep": 0.5, "multiple": 16}},
        {"unstructured": {"method": "wanda", "sparsity": 0.5}},
    ]
    out = tmp_path / "out"
    assert main(["run", str(_recipe(tmp_path, tiny_model_dir, corpus, steps)), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["vocabulary", "depth", "width", "unstructured"]
    sizes = [report["params_before"]["total"]] + [
        s["params_after"]["total"] for s in report["steps"]
    ]
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3] == sizes[4]
    assert report["steps"][3]["params_after"]["nonzero"] < sizes[4]
    depth = report["steps"][1]
    assert len(depth["removed"]) == 1 and len(depth["rounds"][0]) == 3
    speed = report["evaluation"]["speed"]
    assert speed["decode"]["batch_1"]["tokens_per_s"] > 0 and speed["params"]["total"] == sizes[4]
    assert "python" not in report["evaluation"]["perplexity"]
    assert (out / "depth_scores.png").stat().st_size > 0
    assert "## Recipe steps" in (out / "report.md").read_text()
    code = (
        "import sys, json\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r})\n"
        "ids = m.generate(**t('def f(x):', return_tensors='pt'), max_new_tokens=4, min_new_tokens=4, do_sample=False)\n"
        "assert 'prunekit' not in sys.modules\n"
        "c = m.config\n"
        "print(json.dumps([c.num_hidden_layers, c.intermediate_size, c.vocab_size, len(t), ids.shape[1]]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    layers, ffn, vocab, tok_len, _ = json.loads(res.stdout.strip().splitlines()[-1])
    assert (layers, ffn) == (2, 32)
    assert vocab == tok_len == report["steps"][0]["tokens_kept"] < 320


def test_model_dependent_errors_before_any_step(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, tiny_model_dir, corpus, [{"depth": {"remove": 3}}])
    with pytest.raises(PrunekitError, match="cannot remove 3 of 3 layers"):
        from prunekit.recipes.runner import run_recipe

        run_recipe(load_recipe(recipe), out, progress=False)
    assert not out.exists()
    assert main(["run", str(recipe), "-o", str(out)]) == 2
    recipe2 = _recipe(
        tmp_path,
        tiny_model_dir,
        corpus,
        [{"depth": {"remove": 1}}],
        {"perplexity": ["no/such/data"]},
    )
    assert main(["run", str(recipe2), "-o", str(out)]) == 2  # data checked before loading
    assert main(["run", str(recipe2)]) == 2  # no output folder given
