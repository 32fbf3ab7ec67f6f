import json

import pytest
import torch

from prunekit.cli import main
from prunekit.data import corpora


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_unknown_language_lists_the_available_ones(tmp_path, capsys):
    code = main(
        ["submodels", "any-model", "--languages", "python,cobol", "-o", str(tmp_path / "o")]
    )
    assert code == 2
    line = _err(capsys)
    assert "unknown language 'cobol'" in line
    assert all(name in line for name in ("python", "java", "cpp", "javascript", "text"))


def test_missing_user_corpus_path_names_the_path(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    argv = ["submodels", "m", "--languages", f"mine={missing}", "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    line = _err(capsys)
    assert f"corpus path '{missing}' for language 'mine' does not exist" in line
    assert not (tmp_path / "o").exists()


def test_missing_corpus_names_the_install_command(tmp_path, capsys, monkeypatch):
    java = corpora.CORPORA["java"]
    monkeypatch.setitem(
        corpora.CORPORA,
        "java",
        corpora.Corpus(
            java.name, java.description, java.licence, lambda: (tmp_path, []), java.install_hint
        ),
    )
    assert (
        main(["submodels", "any-model", "--languages", "python,java", "-o", str(tmp_path / "o")])
        == 2
    )
    line = _err(capsys)
    assert "corpus 'java' has no files" in line
    assert (
        "bash scripts/install_corpora.sh java" in line
        and "apt-get install -y openjdk-17-source" in line
    )


def test_hf_dataset_without_the_datasets_package_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *a, **kw):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    from prunekit.submodels.languages import parse_languages

    with pytest.raises(Exception, match="pip install datasets"):
        parse_languages("hf:someone/corpus")[0].source("calib")


def test_bad_sparsity_list(tmp_path, capsys):
    assert (
        main(
            [
                "submodels",
                "m",
                "--languages",
                "python",
                "--sparsity",
                "0.5,abc",
                "-o",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "comma-separated list" in _err(capsys)


def test_sweep_then_materialize(tmp_path, tiny_model_dir, capsys):
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        "".join(
            json.dumps({"text": f"SELECT name FROM t{i} WHERE id = {i};\n" * 12}) + "\n"
            for i in range(20)
        )
    )
    out = tmp_path / "run"
    args = [
        "submodels",
        str(tiny_model_dir),
        "--languages",
        f"python,sql={mine}",
        "--sparsity",
        "0.5",
        "--calib-samples",
        "4",
        "--seq-len",
        "32",
        "--ppl-tokens",
        "128",
        "--ppl-seq-len",
        "32",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sparsity 0.5" in printed and "sql" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["submodels"]["config"]["languages"] == {"python": "python", "sql": str(mine)}
    assert "## Summary (generated from the numbers)" in (out / "report.md").read_text()

    assert (
        main(
            [
                "submodels",
                "materialize",
                str(out),
                "--language",
                "java",
                "--sparsity",
                "0.5",
                "-o",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "has no language 'java'" in _err(capsys)
    assert (
        main(
            [
                "submodels",
                "materialize",
                str(out),
                "--language",
                "sql",
                "--sparsity",
                "0.6",
                "-o",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "saved: python_s0.50, sql_s0.50" in _err(capsys)

    built = tmp_path / "sql50"
    assert (
        main(
            [
                "submodels",
                "materialize",
                str(out),
                "--language",
                "sql",
                "--sparsity",
                "0.5",
                "-o",
                str(built),
            ]
        )
        == 0
    )
    from transformers import AutoModelForCausalLM

    from prunekit.submodels.masks import load_masks

    model = AutoModelForCausalLM.from_pretrained(built)
    masks, _ = load_masks(out / "masks" / "sql_s0.50.safetensors")
    weight = model.model.layers[1].mlp.down_proj.weight
    assert torch.all(weight[masks["layers.1.mlp.down_proj"]] == 0)
    assert abs(json.loads((built / "report.json").read_text())["sparsity"]["achieved"] - 0.5) < 0.01
    capsys.readouterr()
    assert main(args) == 2  # existing output is never overwritten without --force
    assert "--force" in _err(capsys)
