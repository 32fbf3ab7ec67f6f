"""Per-layer-width exports of every family load in plain transformers (trust_remote_code=True) in
a process where prunekit cannot be imported, with the in-memory model's logits and greedy output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from hetero_helpers import FAMILIES, hetero_model

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


def test_every_family_loads_without_prunekit(tmp_path):
    expected = {"ids": IDS}
    for family in FAMILIES:
        model, _ = hetero_model(family)
        save_checkpoint(model, None, tmp_path / family)
        with torch.no_grad():
            expected[f"{family}.logits"] = model(IDS).logits
        expected[f"{family}.greedy"] = model.generate(
            IDS[:1],
            attention_mask=torch.ones_like(IDS[:1]),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    torch.save(expected, tmp_path / "expected.pt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(tmp_path), ",".join(FAMILIES), str(NEW_TOKENS)],
        cwd=tmp_path,
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
    assert set(result["families"]) == set(FAMILIES)
    for family, got in result["families"].items():
        assert got["max_abs_diff"] <= 1e-5, (family, got)
        assert got["generate_equal"], family
        assert got["class"].startswith("transformers_modules."), got["class"]  # the carried file
        assert got["attn"] == ["sdpa"], (family, got["attn"])
