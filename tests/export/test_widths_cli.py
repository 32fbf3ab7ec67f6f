"""`prunekit eval`, `recover` and `run` take a per-layer-width student and keep its widths."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml
from hetero_helpers import make_hetero

import prunekit
from prunekit.cli import main
from prunekit.export.checkpoint import save_checkpoint
from prunekit.export.widths import layer_widths


@pytest.fixture(scope="module")
def student(tiny_model_dir, tmp_path_factory):
    lm = prunekit.load_model(tiny_model_dir)
    make_hetero(lm.model)
    out = tmp_path_factory.mktemp("widths") / "student"
    save_checkpoint(lm.model, lm.tokenizer, out)
    return out


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text())
    return path


def lists(folder: Path) -> list[list[int]]:
    config = json.loads((folder / "config.json").read_text())
    return [config[k] for k in ("layer_num_attention_heads", "layer_intermediate_sizes")]


def test_eval(student, capsys):
    argv = ["eval", str(student), "--ppl", "python", "--ppl-tokens", "128", "--ppl-seq-len", "32"]
    assert main(argv) == 0
    assert "python" in capsys.readouterr().out


def test_recover_keeps_the_widths(student, tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "recovered"
    train = ["--seq-len", "32", "--windows", "4", "--batch-size", "2", "--micro-batch", "1"]
    argv = ["recover", str(student), "--teacher", str(tiny_model_dir), "--data", str(corpus)]
    assert main([*argv, *train, "--no-bf16", "--max-steps", "2", "-o", str(out)]) == 0
    assert lists(out) == lists(student) == [[2, 4, 2], [64, 42, 40]]
    assert layer_widths(prunekit.load_model(out).model) == layer_widths(
        prunekit.load_model(student).model
    )


def test_run_recipe_on_a_per_layer_student(student, corpus, tmp_path):
    recipe = {
        "model": str(student),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "seed": 0},
        "steps": [{"depth": {"remove": 1, "criterion": "angular"}}],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    before = layer_widths(prunekit.load_model(student).model)
    widths = layer_widths(prunekit.load_model(out).model)
    assert widths in ([before[0], before[1]], [before[0], before[2]], [before[1], before[2]])
    assert lists(out) == [[w.heads for w in widths], [w.mlp for w in widths]]  # all differ
