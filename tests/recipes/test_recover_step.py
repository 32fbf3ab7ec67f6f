"""The recipe's `recover` step: validated up front, last in the recipe, and run on a pruned student."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from prunekit.cli import main
from prunekit.errors import PrunekitError
from prunekit.recipes.schema import validate


def _with(steps):
    return {"model": "smollm2-135m", "steps": steps}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"recover": {"max_steps": 1}}, {"depth": {"remove": 1}}], "make it the last step"),
        ([{"recover": {"epoch": 1}}], "unknown key .epoch."),
        ([{"recover": {"train": "everything"}}], "trainable set"),
        ([{"recover": {"max_steps": 0}}], "budget of zero"),
        ([{"recover": {"shard": "fsdp"}}], "shard: fsdp needs torchrun"),
    ],
)
def test_bad_recover_steps_are_one_line(steps, message):
    with pytest.raises(PrunekitError, match=message):
        validate(_with(steps))


def test_structural_and_sparse_student_is_distilled_with_its_teacher(tmp_path, tiny_model_dir):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpus = tmp_path / "corpus.py"
    corpus.write_text("\n\n".join((stdlib / n).read_text() for n in ("textwrap.py", "bisect.py")))
    small = tmp_path / "bisect_only.py"
    small.write_text((stdlib / "bisect.py").read_text())
    data = {
        "model": str(tiny_model_dir),
        "calibration": {
            "source": str(corpus),
            "samples": 4,
            "seq_len": 32,
            "seed": 0,
            "batch_size": 2,
        },
        "steps": [
            {"vocabulary": {"corpus": str(small)}},
            {"depth": {"remove": 1, "criterion": "angular"}},
            {"unstructured": {"method": "wanda", "sparsity": 0.5}},
            {
                "recover": {
                    "data": str(corpus),
                    "seq_len": 32,
                    "windows": 4,
                    "batch_size": 2,
                    "micro_batch": 1,
                    "max_steps": 2,
                    "max_tokens": None,
                    "lr": 1e-2,
                    "bf16": False,
                }
            },
        ],
        "evaluate": {"perplexity": []},
    }
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    rec = report["steps"][-1]
    assert rec["step"] == "recover" and rec["vocabulary_mapped"]
    assert rec["masks"]["pruned_weights_still_zero"] and rec["training"]["steps"] == 2
    code = (
        "import sys, json, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r})\n"
        "assert 'prunekit' not in sys.modules\n"
        "w = [mod.weight for n, mod in m.named_modules() if n.endswith('proj')]\n"
        "print(json.dumps([sum(int((x == 0).sum()) for x in w), m.config.num_hidden_layers]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    zeros, layers = json.loads(res.stdout.strip().splitlines()[-1])
    assert layers == 2 and zeros >= rec["masks"]["pruned_weights"]
