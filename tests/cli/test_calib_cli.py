"""`--calib answered:CORPUS` and mixtures from the CLI and recipes: every pruning command and step
takes them, the report counts each part, and a bad part is one line before any model loads."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml

from prunekit.cli import main

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SMALL = ["--calib-samples", "6", "--seq-len", "64", "--batch-size", "2"]


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "funcs"
    path.mkdir()
    (path / "funcs.py").write_text(
        "\n\n".join(
            f'def scale{i}(values):\n    """Multiply every value by {i}."""\n'
            f"    out = [v * {i} for v in values]\n    return out\n"
            for i in range(8)
        )
    )
    return path


@pytest.fixture
def answers(monkeypatch, tmp_path):
    """Every instruction answered with the corpus's own function (no generation, no sandbox)."""
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))

    def fake(items, corpus, model, tokenizer, root, *args, **kwargs):
        n = len(items)
        kept = {i.source: i.response for i in items}
        return kept, {"cache": "stub", "from_cache": True, "asked": n, "kept": n, "verdicts": {}}

    monkeypatch.setattr("prunekit.recovery.answers.teacher_answers", fake)


def _error(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("prunekit: error")]


def test_prune_calibrates_wanda_on_answers(tmp_path, tiny_model_dir, folder, answers, capsys):
    out = tmp_path / "out"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", "--calib", f"answered:{folder}"]
    assert main([*argv, *SMALL, "-o", str(out)]) == 0
    assert f"calibration answered:{folder}" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    cal = report["calibration"]
    (part,) = cal["parts"]
    assert part["kind"] == "answered" and part["share"] == 6 and part["sequences"] == 6
    assert cal["samples"] == 6 and cal["tokens"] == part["tokens"] > 0
    assert cal["answers"]["asked"] == 6 and part["removed_humaneval_overlap"] == 0
    assert report["sparsity"]["achieved"] == 0.5


def test_structured_takes_a_mixture(tmp_path, tiny_model_dir, folder, answers):
    out = tmp_path / "out"
    flags = ["--heads", "0.5", "--ffn", "0.25", "--ratios", "uniform", "--max-ratio", "0.5"]
    calib = f"{STDLIB / 'textwrap.py'},answered:{folder}"
    argv = ["structured", str(tiny_model_dir), *flags, "--calib", calib, *SMALL]
    assert main([*argv, "-o", str(out)]) == 0
    parts = json.loads((out / "report.json").read_text())["calibration"]["parts"]
    assert [(p["kind"], p["share"], p["sequences"]) for p in parts] == [
        ("corpus", 3, 3),
        ("answered", 3, 3),
    ]
    assert parts[0]["tokens"] == 3 * 64


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--calib", "python,answered:nosuch"],
            "calibration part 'answered:nosuch': data 'nosuch'",
        ),
    ],
)
def test_a_bad_part_is_one_line_before_loading(tmp_path, tiny_model_dir, capsys, extra, needle):
    out = tmp_path / "out"
    argv = ["prune", str(tiny_model_dir), "--sparsity", "0.5", *extra, "-o", str(out)]
    assert main(argv) == 2
    (line,) = _error(capsys)
    assert needle in line and not out.exists()
    argv[0] = "structured"
    argv[2:4] = ["--ffn", "0.25"]
    if "--allocation" not in extra:
        assert main(argv) == 2
        (line,) = _error(capsys)
        assert needle in line and not out.exists()


def test_recipe_steps_calibrate_on_answers(tmp_path, tiny_model_dir, folder, answers):
    recipe = {
        "model": str(tiny_model_dir),
        "calibration": {"source": f"answered:{folder}", "samples": 4, "seq_len": 64},
        "steps": [
            {"width": {"ffn_keep": 0.5, "criterion": "activation", "multiple": 8}},
            {"structured": {"heads": 0.5, "ratios": "uniform", "max_ratio": 0.5}},
            {"unstructured": {"sparsity": 0.5, "source": f"python,answered:{folder}"}},
        ],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out)]) == 0
    width, structured, unstructured = json.loads((out / "report.json").read_text())["steps"]
    for step in (width, structured):
        (part,) = step["calibration"]["parts"]
        assert part["kind"] == "answered" and part["sequences"] == 4
    parts = unstructured["calibration"]["parts"]
    assert [(p["source"], p["sequences"]) for p in parts] == [
        ("python", 2),
        (f"answered:{folder}", 2),
    ]
    assert unstructured["sparsity"]["achieved"] == 0.5
