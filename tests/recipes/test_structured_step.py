"""The recipe's `structured` step: validated up front, composes with vocabulary/depth before it and
recover after it, and writes its ratios plot."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml

import prunekit
from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.export.widths import layer_widths
from prunekit.recipes.schema import validate


def _with(steps):
    return {"model": "smollm2-135m", "steps": steps}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"structured": {"heads": 1}}], "step 1 (structured): heads must be a fraction in [0, 1)"),
        ([{"structured": {"ffn": 0.2, "importance": "l1"}}], "importance 'l1' is not one of"),
        ([{"structured": {"ffn": 0.2, "ratios": "owl"}}], "ratios 'owl' is not one of"),
        ([{"structured": {"ffn": 0.2, "head": 0.1}}], "unknown key 'head'"),
        ([{"structured": {}}], "nothing to remove"),
        (
            [{"unstructured": {"sparsity": 0.5}}, {"structured": {"ffn": 0.2}}],
            "structural steps must come before 'unstructured'",
        ),
    ],
)
def test_bad_structured_steps_are_one_line(steps, message):
    with pytest.raises(PrunekitError) as err:
        validate(_with(steps))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def corpus(tmp_path):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path = tmp_path / "corpus.py"
    path.write_text("\n\n".join((stdlib / n).read_text() for n in ("textwrap.py", "bisect.py")))
    return path


def _recipe(tmp_path, model, corpus, steps) -> Path:
    data = {
        "model": str(model),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "batch_size": 2},
        "steps": steps,
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_vocabulary_depth_structured_recover(tmp_path, tiny_model_dir, corpus):
    small = tmp_path / "bisect_only.py"
    small.write_text((Path(sysconfig.get_paths()["stdlib"]) / "bisect.py").read_text())
    recover = {
        "data": str(corpus),
        "seq_len": 32,
        "windows": 4,
        "batch_size": 2,
        "micro_batch": 1,
        "max_steps": 2,
        "max_tokens": None,
        "bf16": False,
    }
    steps = [
        {"vocabulary": {"corpus": str(small)}},
        {"depth": {"remove": 1, "criterion": "angular"}},
        {"structured": {"heads": 0.25, "ffn": 0.25, "importance": "fused", "ratios": "adaptive"}},
        {"recover": recover},
    ]
    out = tmp_path / "out"
    assert main(["run", str(_recipe(tmp_path, tiny_model_dir, corpus, steps)), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    step = report["steps"][2]
    assert step["step"] == "structured" and len(step["kinds"]["ffn"]["groups_after"]) == 2
    removed = sum(k["removed_params"] for k in step["kinds"].values())
    assert report["steps"][1]["params_after"]["total"] - step["params_after"]["total"] == removed
    assert (out / "structured_ratios.png").exists()
    assert "structured | " in (out / "report.md").read_text()
    assert report["steps"][3]["step"] == "recover" and report["steps"][3]["training"]["steps"] == 2
    widths = layer_widths(prunekit.load_model(out).model)
    assert [w.kv_heads for w in widths] == step["kinds"]["heads"]["groups_after"]
    assert [w.mlp for w in widths] == step["kinds"]["ffn"]["groups_after"]


def test_impossible_budget_fails_before_any_step(tmp_path, tiny_model_dir, corpus, capsys):
    steps = [{"structured": {"heads": 0.7}}]
    out = tmp_path / "out"
    assert main(["run", str(_recipe(tmp_path, tiny_model_dir, corpus, steps)), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith("prunekit: error: recipe step structured: structured heads")
        and not out.exists()
    )
