"""`prunekit export RUN --format gguf` and the backend choice of `prunekit eval FILE.gguf`."""

from __future__ import annotations

import pytest
from gguf import GGUFReader

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.evaluation.llamacpp import available
from prunekit.evaluation.llamacpp_eval import resolve_backend


def run_cli(capsys, *argv):
    """Exit status, stdout and the error line (one at most, never a traceback)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("prunekit: error")]
    assert len(errors) <= 1
    return code, captured.out, "\n".join(errors)


def test_export_writes_a_gguf(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "tiny.gguf"
    code, stdout, err = run_cli(
        capsys, "export", tiny_model_dir, "--quant", "q8_0", "-o", out, "--no-progress"
    )
    assert code == 0, err
    assert "llama, q8_0" in stdout and f"prunekit eval {out}" in stdout
    reader = GGUFReader(str(out))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert {t.tensor_type.name for t in reader.tensors} == {"Q8_0", "F32"}


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["{model}", "--quant", "q3_k", "-o", "{out}"], "unknown --quant 'q3_k'"),
        (["{model}", "-o", "{tmp}/x.bin"], "should end in .gguf"),
        (["{tmp}/missing", "-o", "{out}"], "not found"),
        (["{tmp}", "-o", "{out}"], "has no config.json"),
        (["{model}/config.json", "-o", "{out}"], "is a file"),
        (["{model}", "-o", "{existing}"], "already exists; pass --force"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tiny_model_dir, tmp_path, argv, needle):
    existing = tmp_path / "old.gguf"
    existing.write_text("keep")
    names = {"model": tiny_model_dir, "out": tmp_path / "new.gguf", "tmp": tmp_path}
    names["existing"] = existing
    code, _, err = run_cli(capsys, "export", *[a.format(**names) for a in argv])
    assert code == 2 and needle in err
    assert not (tmp_path / "new.gguf").exists() and existing.read_text() == "keep"


def test_backend_choice():
    assert resolve_backend("runs/x", "auto") == "transformers"
    assert resolve_backend("m.gguf", "transformers") == "transformers"
    expected = "llama.cpp" if available() else "transformers"  # --ppl included
    assert resolve_backend("m.gguf", "auto") == expected
    with pytest.raises(PrunekitError, match="runs .gguf files; export the model first"):
        resolve_backend("runs/x", "llama.cpp")


@pytest.mark.skipif(available(), reason="checks the message shown when llama.cpp is missing")
def test_llamacpp_backend_without_runtime_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", tmp_path / "m.gguf", "--backend", "llama.cpp", "--speed")
    assert code == 2 and "llama.cpp is not installed" in err


def test_parallel_is_for_llamacpp_only(capsys, tiny_model_dir):
    code, _, err = run_cli(capsys, "eval", tiny_model_dir, "--speed", "--parallel", "4")
    assert code == 2 and "more than 1 only for a .gguf run by llama.cpp" in err
    assert "--gen-batch-size" in err
    code, _, err = run_cli(capsys, "eval", tiny_model_dir, "--speed", "--parallel", "0")
    assert code == 2 and "--parallel 0: give 1 or more" in err
