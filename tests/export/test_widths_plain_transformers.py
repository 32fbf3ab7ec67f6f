"""Per-layer-width exports of every family load in plain transformers (trust_remote_code=True) in
a process where prunekit cannot be imported, with the in-memory model's logits and greedy output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from hetero_helpers import FAMILIES, hetero_model, make_hetero

from conftest import TINY
from prunekit.export.checkpoint import save_checkpoint

IDS = torch.tensor(
    [[5, 17, 3, 99, 42, 8, 61, 7, 120, 33, 2, 64], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
)
NEW_TOKENS = 6

# Runs with `python -I` (no PYTHONPATH, no cwd on sys.path) after dropping every sys.path entry
# that holds a prunekit package (the editable install's src/), so only torch + transformers load.
CHILD = r"""
import json, os, sys
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p, "prunekit"))]
try:
    import prunekit  # noqa: F401
    importable = True
except ImportError:
    importable = False
import torch
from transformers import AutoModelForCausalLM

root, families, new_tokens = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
expected = torch.load(os.path.join(root, "expected.pt"), weights_only=True)
ids = expected["ids"]
result = {"prunekit_importable": importable, "families": {}}
for family in families:
    model = AutoModelForCausalLM.from_pretrained(
        os.path.join(root, family), trust_remote_code=True, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        diff = (model(ids).logits - expected[family + ".logits"]).abs().max().item()
    out = model.generate(
        ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=new_tokens, do_sample=False,
        pad_token_id=0,
    )
    result["families"][family] = {
        "max_abs_diff": diff,
        "generate_equal": bool(torch.equal(out, expected[family + ".greedy"])),
        "class": type(model).__module__ + "." + type(model).__name__,
        "attn": sorted({l.self_attn.config._attn_implementation for l in model.model.layers}),
    }
try:  # stock classes alone must refuse the folder (shape mismatch), never load it wrong
    AutoModelForCausalLM.from_pretrained(os.path.join(root, families[0]))
    result["stock_refused"] = False
except Exception:
    result["stock_refused"] = True
print("RESULT " + json.dumps(result))
"""


def _export(models: dict, root) -> None:
    """Save each per-layer-width model under root/NAME with its logits and greedy output."""
    expected = {"ids": IDS}
    for name, model in models.items():
        save_checkpoint(model, None, root / name)
        with torch.no_grad():
            expected[f"{name}.logits"] = model(IDS).logits
        expected[f"{name}.greedy"] = model.generate(
            IDS[:1],
            attention_mask=torch.ones_like(IDS[:1]),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    torch.save(expected, root / "expected.pt")


def _load_without_prunekit(root, names) -> dict:
    """CHILD's result for the folders root/NAME, in a process where prunekit is not importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(root), ",".join(names), str(NEW_TOKENS)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["prunekit_importable"] is False
    assert result["stock_refused"] is True
    assert set(result["families"]) == set(names)
    for name, got in result["families"].items():
        assert got["max_abs_diff"] <= 1e-5, (name, got)
        assert got["generate_equal"], name
        assert got["class"].startswith("transformers_modules."), got["class"]  # the carried file
        assert got["attn"] == ["sdpa"], (name, got["attn"])
    return result


def test_every_family_loads_without_prunekit(tmp_path):
    _export({family: hetero_model(family)[0] for family in FAMILIES}, tmp_path)
    _load_without_prunekit(tmp_path, list(FAMILIES))


@pytest.fixture
def olmo_family():
    """OLMo registered the way a new family is added: one adapter entry (OLMo's blocks have the
    llama roles), removed again after the test."""
    from prunekit.models.adapters import FAMILIES as REGISTERED
    from prunekit.models.adapters import DecoderAdapter

    assert "olmo" not in REGISTERED
    REGISTERED.register(DecoderAdapter("olmo", ("olmo",)))
    yield
    del REGISTERED["olmo"]


def test_a_family_added_by_its_adapter_entry_alone_exports_and_reloads(
    olmo_family, tmp_path, tiny_model_dir
):
    from transformers import AutoModelForCausalLM, AutoTokenizer, OlmoConfig

    import prunekit

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(OlmoConfig(**TINY), dtype=torch.float32).eval()
    make_hetero(model)
    _export({"olmo": model}, tmp_path)
    config = json.loads((tmp_path / "olmo" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoModelForCausalLM": "modeling_prunekit_widths.PrunekitOlmoForCausalLM"
    }
    assert config["layer_intermediate_sizes"] == [64, 42, 40]
    result = _load_without_prunekit(tmp_path, ["olmo"])
    assert result["families"]["olmo"]["class"].endswith(".PrunekitOlmoForCausalLM")

    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "olmo")
    loaded = prunekit.load_model(tmp_path / "olmo").model  # prunekit's own classes
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, model(IDS).logits, atol=1e-5, rtol=0)
