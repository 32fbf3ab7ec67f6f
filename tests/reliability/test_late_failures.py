"""Every check that can be made before the model loads is made first: one line, exit 2,
nothing written, and the model never loaded (loading is replaced by a tripwire here)."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if any command gets as far as loading a model."""

    def tripwire(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr("prunekit.models.loading.load_model", tripwire)


def one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("prunekit: error")]
    assert len(lines) == 1, err
    return lines[0]


PRUNE = ["prune", "{model}", "--sparsity", "0.5", "--calib-samples", "4", "--seq-len", "32"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--batch-size", "0"], "--batch-size must be a whole number ≥ 1, got 0"),
        (["--seq-len", "1"], "--seq-len must be a whole number ≥ 2"),
        (["--calib-samples", "0"], "--calib-samples must be a whole number ≥ 1"),
        (
            ["--ppl-batch-size", "0", "--eval-ppl", "python"],
            "--ppl-batch-size must be a whole number ≥ 1",
        ),
        (["--calib", "/bin/ls"], "is not a text file"),
    ],
)
def test_prune_refuses_before_loading(
    capsys, tmp_path, tiny_model_dir, no_model_load, extra, needle
):
    out = tmp_path / "out"
    argv = [a.replace("{model}", str(tiny_model_dir)) for a in PRUNE] + extra + ["-o", str(out)]
    assert needle in one_line_error(capsys, *argv)
    assert not out.exists()


def test_unwritable_output_location_is_refused_before_loading(
    capsys, tmp_path, tiny_model_dir, no_model_load
):
    """/sys refuses new folders to root and users alike, like a read-only filesystem."""
    argv = [a.replace("{model}", str(tiny_model_dir)) for a in PRUNE]
    err = one_line_error(capsys, *argv, "-o", "/sys/prunekit-out/run")
    assert "is not writable" in err and "/sys" in err


def test_eval_refuses_a_corrupt_report_before_loading(capsys, tmp_path, no_model_load):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text('{"model": {"name": "x"}, "evaluation": ')
    err = one_line_error(capsys, "eval", str(run), "--ppl", "python")
    assert "not a readable JSON report" in err
    assert (run / "report.json").read_text().endswith('"evaluation": ')  # untouched
    (run / "report.json").write_text("[1, 2]")
    assert "not a prunekit report" in one_line_error(capsys, "eval", str(run), "--ppl", "python")


def test_eval_refuses_bad_numbers_before_loading(capsys, tiny_model_dir, no_model_load):
    err = one_line_error(
        capsys, "eval", str(tiny_model_dir), "--ppl", "python", "--ppl-seq-len", "0"
    )
    assert "--ppl-seq-len must be a whole number ≥ 2" in err


def test_recipe_that_is_not_utf8(capsys, tmp_path, no_model_load):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(
        b"model: smollm2-135m\nsteps:\n  - unstructured: {sparsity: 0.5}\n# \xff\xfe\n"
    )
    err = one_line_error(capsys, "run", str(recipe), "-o", str(tmp_path / "out"))
    assert "not UTF-8" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content",
    [
        {"evaluation": "x", "model": 5},
        {"evaluation": {"perplexity": [1, 2]}, "model": {"name": 3}},
        {"evaluation": {"humaneval": {"pass@1": "x"}}},
    ],
)
def test_compare_with_unexpected_content(capsys, tmp_path, content):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for run in (good, bad):
        run.mkdir()
    (good / "report.json").write_text(json.dumps({"model": {"name": "m"}}))
    (bad / "report.json").write_text(json.dumps(content))
    err = one_line_error(capsys, "compare", str(good), str(bad), "--no-plot")
    assert str(bad / "report.json") in err
