"""The depth step scored on the model's own answers (`source: answered:CORPUS`): only answers that
ran are used, weights cover exactly the answer tokens, and misuse is one line before loading."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from prunekit.calibration.answered import answered_batches
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.evaluation.generation import Generation
from prunekit.recipes import validate
from prunekit.recipes.runner import precheck

BODIES = ["    return 1\n", "    return (\n"]  # one runs, one does not compile


@pytest.fixture
def answering(monkeypatch, tmp_path):
    """Answers in turn: every other one runs in the sandbox; the cache lives in tmp_path."""
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))

    def fake(model, tokenizer, prompts, **kw):
        return [[Generation(BODIES[i % 2], 5)] for i in range(len(prompts))], {}

    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", fake)


@pytest.mark.parametrize(
    ("steps", "calibration", "message"),
    [
        (
            [{"depth": {"remove": 1, "source": "answered:python", "last_token": True}}],
            "python",
            "does not go with last_token",
        ),
        (  # the recipe's source reaches every step without its own
            [{"depth": {"remove": 1, "last_token": True}}],
            "python,answered:python",
            "does not go with last_token",
        ),
        ([{"vocabulary": {}}], "answered:python", "give it a corpus"),
        ([{"width": {"ffn_keep": 0.5, "source": "python,python"}}], "python", "twice"),
    ],
)
def test_answered_sources_that_cannot_work_are_schema_errors(steps, calibration, message):
    with pytest.raises(PrunekitError, match=message) as err:
        validate({"model": "m", "calibration": {"source": calibration}, "steps": steps})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "step",
    [
        {"width": {"ffn_keep": 0.5, "source": "answered:python"}},
        {"structured": {"target": 0.2, "source": "python,answered:python"}},
        {"unstructured": {"sparsity": 0.5, "source": "answered:python", "allocation": "owl"}},
        {"unstructured": {"sparsity": 0.5, "source": "answered:python", "allocation": "neuroal"}},
        {"depth": {"remove": 1, "source": "instruct:python,answered:python"}},
    ],
)
def test_every_step_takes_answered_sources(step):
    name = next(iter(step))
    recipe = validate({"model": "m", "steps": [step]})
    assert recipe.steps[0].name == name and "answered:python" in recipe.steps[0].options["source"]


def test_unknown_answered_corpus_fails_before_loading():
    recipe = validate(
        {
            "model": "qwen2.5-coder-0.5b",
            "steps": [{"depth": {"remove": 1, "source": "answered:nope"}}],
        }
    )
    with pytest.raises(PrunekitError, match="neither a built-in corpus") as err:
        precheck(recipe)
    assert str(err.value).startswith("recipe step depth: calibration part 'answered:nope': ")
    assert "\n" not in str(err.value)


def test_weights_cover_exactly_the_kept_answers(tiny_model_dir, answering):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    batches, weights, desc = answered_batches(model, tok, "python", 6, 512, 0, progress=False)
    kept = desc["answers"]["kept"]
    assert desc["answers"]["asked"] == 6 and 1 <= kept <= 3  # only the running bodies
    assert desc["samples"] == len(batches) == kept - desc["removed_humaneval_overlap"]
    for ids, w in zip(batches, weights):
        first = int(torch.nonzero(w[0]).min())  # position predicting the first answer token
        assert torch.all(w[0, :first] == 0) and torch.all(w[0, first:] == 1)
        assert tok.decode(ids[0, first + 1 :]).strip() == BODIES[0].strip()  # the answer, no prompt
    assert desc["scored_tokens"] == sum(int(w.sum()) for w in weights)


def test_recipe_scores_depth_on_answers(tmp_path, tiny_model_dir, answering):
    recipe = {
        "model": str(tiny_model_dir),
        "calibration": {"source": "python", "samples": 6, "seq_len": 256, "seed": 0},
        "steps": [{"depth": {"remove": 1, "criterion": "kl", "source": "answered:python"}}],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    step = json.loads((out / "report.json").read_text())["steps"][0]
    cal = step["calibration"]
    assert cal["source"] == "answered:python" and cal["samples"] == cal["answers"]["kept"] >= 1
    assert cal["scored_tokens"] > 0
    assert step["layers_after"] == 2 and len(step["rounds"][0]) == 3
