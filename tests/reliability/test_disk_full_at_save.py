"""A full disk at save (issue 31, item 5): free space is checked before a byte is written (the
model's size is known), the result goes elsewhere when -o cannot take it, and when no place can
take the weights what can be kept (report, config, tokenizer) is kept; always one line saying
where, never a traceback. The same for recovery checkpoints (the last complete one is kept)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.export.checkpoint import save_checkpoint, weights_bytes
from prunekit.utils import write_output

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def tiny():
    from conftest import _train_tokenizer, tiny_model

    return tiny_model("llama"), _train_tokenizer()


def _writer(model, tokenizer):
    def write(folder: Path) -> None:
        save_checkpoint(model, tokenizer, folder)
        (folder / "report.json").write_text(json.dumps({"model": "tiny"}))

    return write


def _full_below(monkeypatch, *full: Path) -> None:
    """Report 1 MiB free under the `full` folders (and plenty elsewhere)."""
    real = shutil.disk_usage

    def usage(path):
        if any(Path(path).resolve().is_relative_to(f.resolve()) for f in full):
            return Usage(1 << 40, (1 << 40) - (1 << 20), 1 << 20)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_weights_bytes_counts_tied_tensors_once(tiny):
    model, _ = tiny
    expected = sum(p.numel() * 4 for p in model.state_dict().values())
    assert weights_bytes(model) == expected
    assert weights_bytes(model, torch.bfloat16) == expected // 2
    model.lm_head.weight = model.model.embed_tokens.weight
    assert weights_bytes(model) == expected - model.lm_head.weight.numel() * 4


def test_too_little_space_at_o_saves_elsewhere_before_writing(tmp_path, monkeypatch, tiny):
    full, elsewhere = tmp_path / "full", tmp_path / "elsewhere"
    full.mkdir()
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    monkeypatch.setattr("prunekit.export.checkpoint.weights_bytes", lambda *a: 100 << 20)
    _full_below(monkeypatch, full)
    with pytest.raises(PrunekitError) as err:
        write_output(full / "out", _writer(*tiny))
    [rescued] = elsewhere.iterdir()
    message = str(err.value)
    assert "\n" not in message and f"saved to '{rescued}'" in message
    assert "118 MiB needed for the weights, 1 MiB free there" in message
    assert (rescued / "model.safetensors").is_file() and (rescued / "report.json").is_file()
    assert list(full.iterdir()) == []


def test_no_place_for_the_weights_keeps_the_rest_and_says_where(tmp_path, monkeypatch, tiny):
    full = tmp_path / "full"
    full.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(full))
    monkeypatch.setattr("prunekit.export.checkpoint.weights_bytes", lambda *a: 100 << 20)
    _full_below(monkeypatch, full)
    with pytest.raises(PrunekitError) as err:
        write_output(full / "out", _writer(*tiny))
    message = str(err.value)
    kept = Path(message.split("was saved to '")[1].split("'")[0])
    assert "\n" not in message and "everything but the weights" in message
    assert kept.parent == full and not (full / "out").exists()
    names = {p.name for p in kept.iterdir()}
    assert {"report.json", "config.json", "tokenizer.json", "WEIGHTS_NOT_SAVED.txt"} <= names
    assert not any(n.endswith(".safetensors") for n in names)


def test_a_real_write_failure_in_safetensors_is_one_line(tmp_path):
    """RLIMIT_FSIZE stands in for a disk that fills during the write (not foreseen by the
    free-space check): safetensors' own error is recognised, the small files are kept."""
    code = textwrap.dedent(
        """
        import resource, signal, sys, tempfile
        sys.path.insert(0, sys.argv[2])
        from pathlib import Path
        from conftest import _train_tokenizer, tiny_model
        from prunekit.errors import PrunekitError
        from prunekit.export.checkpoint import save_checkpoint
        from prunekit.utils import write_output

        model, tok = tiny_model("llama"), _train_tokenizer()
        tempfile.tempdir = sys.argv[1]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
        try:
            write_output(Path(sys.argv[1]) / "out", lambda d: save_checkpoint(model, tok, d))
        except PrunekitError as exc:
            print(exc)
        """
    )
    tests = Path(__file__).parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(tests)], capture_output=True, text=True
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "File too large" in proc.stdout and "everything but the weights" in proc.stdout
    kept = Path(proc.stdout.split("was saved to '")[1].split("'")[0])
    assert (kept / "config.json").is_file() and not (kept / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]


def test_a_full_disk_at_a_training_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    from prunekit.recovery.state import latest_state, save_state

    folder = tmp_path / ".out.recover-state"
    p = torch.nn.Parameter(torch.ones(1000))
    opt = torch.optim.AdamW([p])
    save_state(folder, {"w": p}, opt, {"step": 3, "tokens": 1, "losses": []})
    _full_below(monkeypatch, tmp_path)
    with pytest.raises(PrunekitError) as err:
        save_state(folder, {"w": p}, opt, {"step": 6, "tokens": 2, "losses": []})
    kept = latest_state(folder)
    assert kept.name == "step-000000003" and f"'{kept}', is kept" in str(err.value)
    assert "--resume" in str(err.value) and sorted(x.name for x in folder.iterdir()) == [kept.name]
