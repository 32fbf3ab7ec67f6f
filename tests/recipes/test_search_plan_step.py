"""The recipe's `search_plan` step rebuilds what `prunekit search MODEL --plan plan.json` does
(the same weights, on the tiny model), must be the first structural step, and refuses a bad plan
before the model loads."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file
from tests.search.search_helpers import SMALL, tiny_lm
from transformers import AutoTokenizer

import prunekit
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate
from prunekit.search.config import SearchConfig


def _weights(folder) -> dict:
    out: dict = {}
    for path in sorted(folder.glob("*.safetensors")):
        out |= load_file(path)
    return out


@pytest.mark.usefixtures("answering")
def test_search_plan_step_rebuilds_the_weights_of_search_plan(tiny_model_dir, tmp_path):
    model, tok = tiny_lm(tiny_model_dir)
    cfg = SearchConfig(budget="params=0.7", max_generations=1, hours=1.0, **SMALL)
    plan = prunekit.search(model, tok, cfg).plan
    assert any(level != 0 for level in plan["levels"])  # something is cut
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))

    by_cli = tmp_path / "by_cli"
    assert main(["search", str(tiny_model_dir), "--plan", str(path), "-o", str(by_cli)]) == 0
    recipe = tmp_path / "recipe.yaml"
    steps = [{"search_plan": {"file": str(path)}}]
    recipe.write_text(yaml.safe_dump({"model": str(tiny_model_dir), "steps": steps}))
    by_recipe = tmp_path / "by_recipe"
    assert main(["run", str(recipe), "-o", str(by_recipe)]) == 0

    a, b = _weights(by_cli), _weights(by_recipe)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    dense = _weights(tiny_model_dir)
    assert a.keys() != dense.keys() or any(a[k].shape != dense[k].shape for k in a)  # cut
    step = json.loads((by_recipe / "report.json").read_text())["steps"][0]
    assert step["step"] == "search_plan" and step["plan"]["levels"] == plan["levels"]


@pytest.mark.usefixtures("answering")
def test_a_plan_with_a_vocabulary_move_saves_the_pruned_tokenizer(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add(a, b):\n    return a + b\n" * 20)
    model, tok = tiny_lm(tiny_model_dir)
    cfg = SearchConfig(budget="params=0.7", vocabulary=str(corpus), max_generations=1, **SMALL)
    result = prunekit.search(model, tok, cfg)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(result.plan))
    recipe = tmp_path / "recipe.yaml"
    steps = [{"search_plan": {"file": str(path)}}]
    recipe.write_text(yaml.safe_dump({"model": str(tiny_model_dir), "steps": steps}))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out)]) == 0

    kept = result.plan["vocabulary"]["tokens_kept"]
    saved = AutoTokenizer.from_pretrained(out)
    assert len(saved) == kept == json.loads((out / "config.json").read_text())["vocab_size"]
    assert saved.encode("def add(a, b):") == result.tokenizer.encode("def add(a, b):")
    step = json.loads((out / "report.json").read_text())["steps"][0]
    assert step["vocabulary"]["tokens_kept"] == kept


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"search_plan": {}}], "step 1 (search_plan): 'file' is required"),
        ([{"search_plan": {"plan": "p.json"}}], "unknown key 'plan'; valid keys: file"),
        (
            [{"vocabulary": {}}, {"search_plan": {"file": "p.json"}}],
            "step 2 (search_plan): search_plan must be the first structural step",
        ),
        (
            [{"depth": {"remove": 1}}, {"search_plan": {"file": "p.json"}}],
            "move it before 'depth'",
        ),
    ],
)
def test_bad_search_plan_steps_are_one_line(steps, message):
    with pytest.raises(PrunekitError) as err:
        validate({"model": "m", "steps": steps})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_file_that_is_no_plan_fails_before_loading(tmp_path, capsys):
    bad = tmp_path / "plan.json"
    bad.write_text('{"format": "something else"}')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump({"model": "m", "steps": [{"search_plan": {"file": str(bad)}}]})
    )
    assert main(["run", str(recipe), "-o", str(tmp_path / "out"), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"recipe step search_plan: file '{bad}' is not a prunekit search plan" in err
    assert not (tmp_path / "out").exists()
