"""The depth step with `layers: [...]`: the given layers go, unscored; bad indices are one line
before anything is loaded or written."""

from __future__ import annotations

import json
import re
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
    """Calibration text the step never reads (given layers are not scored) but the recipe names."""
    path = tmp_path / "corpus.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "bisect.py").read_text())
    return path


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        ({"remove": 1, "layers": [2]}, "give either remove: N"),
        ({"criterion": "kl"}, "give either remove: N"),
        ({"layers": []}, "layers must be a list of distinct layer indices ≥ 0"),
        ({"layers": [1, 1]}, "layers must be a list of distinct layer indices ≥ 0"),
        ({"layers": [-1]}, "layers must be a list of distinct layer indices ≥ 0"),
        ({"layers": [True]}, "layers must be a list of distinct layer indices ≥ 0"),
        ({"layers": 3}, "layers must be a list of distinct layer indices ≥ 0"),
    ],
)
def test_bad_layers_are_one_line_schema_errors(depth, message):
    with pytest.raises(PrunekitError, match=message) as err:
        validate({**BASE, "steps": [{"depth": depth}]})
    assert "\n" not in str(err.value)


def _recipe(tmp_path, model_dir, corpus, layers) -> str:
    data = {
        "model": str(model_dir),
        "calibration": {"source": str(corpus), "samples": 2, "seq_len": 16, "seed": 0},
        "steps": [{"depth": {"layers": layers}}],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / f"recipe-{'-'.join(map(str, layers))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_given_layers_are_removed_and_the_rest_kept_unchanged(tmp_path, tiny_model_dir, corpus):
    """3 layers, remove [1]: the export's layers 0 and 1 are the original 0 and 2, weight for weight."""
    out = tmp_path / "out"
    assert main(["run", _recipe(tmp_path, tiny_model_dir, corpus, [1]), "-o", str(out)]) == 0
    before = load_file(str(next(tiny_model_dir.glob("*.safetensors"))))
    after = load_file(str(out / "model.safetensors"))
    for new, old in ((0, 0), (1, 2)):
        prefix_new, prefix_old = f"model.layers.{new}.", f"model.layers.{old}."
        names = [k for k in before if k.startswith(prefix_old)]
        assert names
        for k in names:
            assert torch.equal(after[prefix_new + k[len(prefix_old) :]], before[k])
    assert not any(k.startswith("model.layers.2.") for k in after)
    report = json.loads((out / "report.json").read_text())
    step = report["steps"][0]
    assert (step["layers_before"], step["layers_after"], step["removed"]) == (3, 2, [1])
    assert "given: layers 3 → 2" in (out / "report.md").read_text()
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2


@pytest.mark.parametrize(
    ("layers", "message"),
    [([5], "depth layers \\[5\\] do not exist"), ([0, 1, 2], "cannot remove 3 of 3 layers")],
)
def test_layers_the_model_cannot_lose_fail_before_anything_is_written(
    tmp_path, tiny_model_dir, corpus, layers, message, capsys
):
    out = tmp_path / "out"
    assert main(["run", _recipe(tmp_path, tiny_model_dir, corpus, layers), "-o", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and re.search(message, errors[0])  # (the rest: loading progress)
    assert not out.exists()
