"""The recipe's `unstructured` step: forward_dtype and stream validate as one line naming the key,
NeuroAL's dense_reference through allocation_options, and all of them reach report.json."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate


def _with(**options):
    return {"model": "smollm2-135m", "steps": [{"unstructured": {"sparsity": 0.5, **options}}]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"forward_dtype": "float8"},
            "step 1 (unstructured): forward_dtype 'float8' is not one of: auto, float32, bfloat16, "
            "float16",
        ),
        ({"stream": "ahead"}, "step 1 (unstructured): stream 'ahead' is not one of: pruned, dense"),
        (
            {"allocation": "neuroal", "allocation_options": {"dense_reference": "exact"}},
            "unknown NeuroAL dense reference 'exact'; choose one of: stream, cached",
        ),
    ],
)
def test_bad_forward_keys_are_one_line(options, message):
    with pytest.raises(PrunekitError) as err:
        validate(_with(**options))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_forward_keys_default_to_the_models_dtype_and_pruned_stream():
    options = validate(_with()).steps[0].options
    assert options["forward_dtype"] is None and options["stream"] == "pruned"


def test_forward_keys_reach_the_report(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.py"
    corpus.write_text((Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text())
    step = {"method": "wanda", "sparsity": 0.5, "forward_dtype": "bfloat16", "stream": "dense"}
    data = {
        "model": str(tiny_model_dir),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "batch_size": 2},
        "steps": [{"unstructured": step}],
        "evaluate": {"perplexity": []},
    }
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"][0]["calibration_forwards"] == {"dtype": "bfloat16", "stream": "dense"}
