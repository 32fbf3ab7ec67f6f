"""Every bad input gives one line on stderr naming the problem and the fix, exit status 2, no output."""

import pytest

from prunekit.cli import main


def run_cli(capsys, *argv):
    """Exit status and the error line (progress bars may share stderr; a traceback may not)."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [
        line for line in err.replace("\r", "\n").splitlines() if line.startswith("prunekit: error")
    ]
    assert len(lines) <= 1
    return code, "\n".join(lines)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["prune", "no-such-model", "--sparsity", "0.5"], "not found"),
        (["prune", "./missing/folder", "--sparsity", "0.5"], "not found"),
        (["prune", "{model}", "--sparsity", "1.0"], "outside [0, 1)"),
        (["prune", "{model}", "--sparsity", "-0.1"], "outside [0, 1)"),
        (["prune", "{model}", "--pattern", "2:4", "--sparsity", "0.6"], "means sparsity 0.5"),
        (["prune", "{model}", "--pattern", "3:2"], "0 < N < M"),
        (["prune", "{model}", "--sparsity", "0.5", "--calib", "{empty}"], "holds no text files"),
        (["prune", "{model}", "--sparsity", "0.5", "--calib", "{small}"], "fewer than"),
        (
            ["prune", "{model}", "--sparsity", "0.5", "--seq-len", "100000"],
            "beyond the model's context",
        ),
        (["prune", "{model}", "--sparsity", "0.5", "--device", "cuda:0"], "no CUDA GPU"),
        (["prune", "{gpt2}", "--sparsity", "0.5"], "unsupported architecture 'gpt2'"),
        (["prune", "{corrupt}", "--sparsity", "0.5"], "corrupted"),
        (
            ["prune", "{model}", "--method", "wanda", "--sparsity", "0.5", "--calib", "klingon"],
            "neither a built-in corpus",
        ),
    ],
)
def test_bad_input_is_one_clear_line(capsys, tmp_path, tiny_model_dir, argv, needle):
    import shutil

    import torch

    empty = tmp_path / "empty"
    empty.mkdir()
    small = tmp_path / "small.txt"
    small.write_text("x = 1\n")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    gpt2 = tmp_path / "gpt2"
    if "{gpt2}" in argv:
        from transformers import GPT2Config, GPT2LMHeadModel

        GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(
            gpt2
        )
    if "cuda" in " ".join(argv) and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    subs = {
        "{model}": str(tiny_model_dir),
        "{empty}": str(empty),
        "{small}": str(small),
        "{corrupt}": str(corrupt),
        "{gpt2}": str(gpt2),
    }
    out = tmp_path / "out"
    argv = (
        [subs.get(a, a) for a in argv] + ["-o", str(out), "--calib-samples", "4", "--seq-len", "32"]
        if "--seq-len" not in argv
        else [subs.get(a, a) for a in argv] + ["-o", str(out)]
    )
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_existing_output_without_force_is_left_untouched(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    code, err = run_cli(capsys, "prune", str(tiny_model_dir), "--sparsity", "0.5", "-o", str(out))
    assert code == 2 and "--force" in err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_hub_id_offline_fails_clearly(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, err = run_cli(capsys, "eval", "someorg/some-model", "--ppl", "python")
    assert code == 2 and "hub" in err and len(err.splitlines()) == 1


def test_builtin_not_installed_names_the_install_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path))
    code, err = run_cli(capsys, "eval", "gemma3-270m", "--ppl", "python")
    assert code == 2 and "prunekit install gemma3-270m" in err


def test_builtin_with_tampered_weights_is_refused(capsys, tmp_path, monkeypatch, tiny_model_dir):
    import json
    import shutil

    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path))
    folder = tmp_path / "models" / "smollm2-135m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "prunekit_source.json").write_text(
        json.dumps(
            {"files": {"model.safetensors": "0" * 64}, "gguf_sha256": "x", "source_packages": []}
        )
    )
    code, err = run_cli(capsys, "eval", "smollm2-135m", "--ppl", "python")
    assert code == 2 and "do not match their recorded hashes" in err and "--force" in err
