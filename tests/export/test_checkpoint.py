import subprocess
import sys

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.utils import atomic_output_dir


def test_pruned_checkpoint_reloads_in_plain_transformers(tiny_model_dir, tmp_path):
    """Reload in a fresh interpreter that never imports prunekit; sparsity survives the round trip."""
    import prunekit

    lm = prunekit.load_model(str(tiny_model_dir))
    result = prunekit.prune(
        lm.model,
        lm.tokenizer,
        method="wanda",
        sparsity=0.5,
        calib_samples=4,
        seq_len=32,
        progress=False,
    )
    out = tmp_path / "run"
    prunekit.save(result, out)
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r})\n"
        "w = m.model.layers[1].mlp.down_proj.weight\n"
        "ids = m.generate(**t('def f(', return_tensors='pt'), max_new_tokens=4, do_sample=False)\n"
        "assert 'prunekit' not in sys.modules\n"
        "print(float((w == 0).float().mean()), ids.shape[1])\n"
    )
    out_line = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert float(out_line[0]) == pytest.approx(0.5, abs=1e-6)
    assert int(out_line[1]) > 3
    assert (out / "report.json").is_file() and (out / "report.md").is_file()
    assert not list(out.glob("*.bin"))
    reloaded = prunekit.load_model(str(out)).model
    for a, b in zip(result.model.parameters(), reloaded.parameters()):
        torch.testing.assert_close(a, b)


def test_interrupted_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(target) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_and_left_untouched(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(PrunekitError, match="--force"), atomic_output_dir(target):
        pass
    assert (target / "keep.txt").read_text() == "mine"
    with atomic_output_dir(target, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
