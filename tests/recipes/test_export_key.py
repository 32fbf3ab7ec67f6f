"""The recipe's `export:` key: the GGUF files `prunekit export` would write, beside the model,
listed in report.json; bad values refused in one line before anything loads."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import yaml
from gguf import GGUFReader

from prunekit.cli import main

STRUCTURED = {"structured": {"heads": 0.25, "ffn": 0.25, "ratios": "adaptive"}}


@pytest.fixture
def corpus(tmp_path) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path = tmp_path / "corpus.py"
    path.write_text("\n\n".join((stdlib / n).read_text() for n in ("textwrap.py", "bisect.py")))
    return path


def _recipe(tmp_path: Path, model: Path, corpus: Path, steps: list, export) -> Path:
    data = {
        "model": str(model),
        "calibration": {"source": str(corpus), "samples": 4, "seq_len": 32, "batch_size": 2},
        "steps": steps,
        "evaluate": {"perplexity": []},
        "export": export,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _contents(path: Path) -> tuple[dict, dict]:
    """Metadata by key and tensors by name (type, shape, stored bytes) as the gguf reader sees them."""
    reader = GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items()}
    tensors = {
        t.name: (t.tensor_type.name, t.shape.tolist(), np.asarray(t.data)) for t in reader.tensors
    }
    return fields, tensors


@pytest.mark.parametrize(
    ("steps", "arch"),
    [([{"depth": {"remove": 1, "criterion": "angular"}}], "llama"), ([STRUCTURED], "deci")],
)
def test_gguf_files_equal_what_prunekit_export_writes(
    tmp_path, tiny_model_dir, corpus, capsys, steps, arch
):
    out = tmp_path / "seed"
    recipe = _recipe(tmp_path, tiny_model_dir, corpus, steps, {"gguf": ["f32"]})
    assert main(["run", str(recipe), "-o", str(out)]) == 0
    file = out / "seed-f32.gguf"
    listed = json.loads((out / "report.json").read_text())["export"]["gguf"]["files"]
    assert [(f["file"], f["quant"], f["arch"], f["bytes"]) for f in listed] == [
        ("seed-f32.gguf", "f32", arch, file.stat().st_size)
    ]
    assert "gguf f32" in capsys.readouterr().out
    assert "GGUF seed-f32.gguf" in (out / "report.md").read_text()
    cli = tmp_path / "cli.gguf"
    argv = ["export", str(out), "--format", "gguf", "--quant", "f32", "-o", str(cli)]
    assert main([*argv, "--no-progress"]) == 0
    (got_fields, got), (want_fields, want) = _contents(file), _contents(cli)
    assert got_fields == want_fields and got_fields["general.architecture"] == arch
    assert got.keys() == want.keys()
    for name, (kind, shape, data) in want.items():
        assert got[name][:2] == (kind, shape) and np.array_equal(got[name][2], data), name


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ({"gguf": ["q5_k"]}, "recipe export: unknown quant 'q5_k' in gguf; choose from: f16, bf16"),
        ({"onnx": ["f16"]}, "recipe export: unknown key 'onnx'; valid keys: gguf"),
        ("gguf", "recipe export: must be a mapping like {gguf: [q8_0, f16]}, got 'gguf'"),
        ({"gguf": 8}, "recipe export: gguf must be a list of quants, e.g. [q8_0, f16]"),
        ({"gguf": ["f16", "f16"]}, "recipe export: gguf lists 'f16' twice; give each quant once"),
    ],
)
def test_bad_export_is_one_line_before_loading(
    tmp_path, tiny_model_dir, corpus, capsys, monkeypatch, export, message
):
    import prunekit.models.loading as loading

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_model", no_load)
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, tiny_model_dir, corpus, [STRUCTURED], export)
    assert main(["run", str(recipe), "-o", str(out)]) == 2
    assert _error(capsys).startswith(f"prunekit: error: {message}")
    assert not out.exists() and not list(tmp_path.glob("*.gguf"))


def test_per_layer_qwen3_keeps_the_model_and_refuses_in_one_line(tmp_path, corpus, capsys):
    """llama.cpp's deci has no q/k norms: the CLI's refusal, the pruned model still saved."""
    from transformers import AutoModelForCausalLM

    from conftest import _train_tokenizer, tiny_config

    tokenizer = _train_tokenizer()
    config = tiny_config("qwen3")
    config.vocab_size = len(tokenizer)
    model_dir = tmp_path / "qwen3"
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, model_dir, corpus, [STRUCTURED], {"gguf": ["q8_0", "f16"]})
    assert main(["run", str(recipe), "-o", str(out)]) == 2
    err = _error(capsys)
    assert err.startswith("prunekit: error: recipe export: per-layer widths of a 'qwen3' model")
    assert err.endswith(f"(no GGUF written; the model and report are in '{out}')")
    report = json.loads((out / "report.json").read_text())
    assert report["export"]["gguf"]["files"] == [] and "no q/k norms" in err
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.gguf"))


def test_unexportable_family_is_refused_before_the_first_step(tmp_path, corpus, capsys):
    from transformers import AutoModelForCausalLM

    from conftest import _train_tokenizer, tiny_config

    tokenizer = _train_tokenizer()
    config = tiny_config("mistral")
    config.vocab_size = len(tokenizer)
    model_dir = tmp_path / "mistral"
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, model_dir, corpus, [STRUCTURED], {"gguf": ["q8_0"]})
    assert main(["run", str(recipe), "-o", str(out)]) == 2
    assert _error(capsys) == (
        "prunekit: error: recipe export: GGUF export supports llama, qwen2, qwen3 models, "
        "not 'mistral'"
    )
    assert not out.exists()
