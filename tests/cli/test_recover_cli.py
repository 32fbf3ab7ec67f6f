"""`prunekit recover` end to end on a tiny model, and its bad-input lines (nothing written)."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from prunekit.cli import main


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.py"
    path.write_text((Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text())
    return path


@pytest.fixture
def student(tmp_path, tiny_model_dir):
    out = tmp_path / "student"
    assert (
        main(
            [
                "prune",
                str(tiny_model_dir),
                "--method",
                "magnitude",
                "--sparsity",
                "0.5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return out


TRAIN = [
    "--seq-len",
    "32",
    "--windows",
    "4",
    "--batch-size",
    "2",
    "--micro-batch",
    "1",
    "--no-bf16",
]


def test_recover_exports_a_plain_checkpoint_with_its_report(tmp_path, student, corpus):
    out = tmp_path / "recovered"
    args = [
        "recover",
        str(student),
        "--data",
        str(corpus),
        *TRAIN,
        "--max-steps",
        "2",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    rec = report["recovery"]
    assert rec["masks"]["pruned_weights_still_zero"] and rec["training"]["steps"] == 2
    assert report["teacher"]["id"] == str(
        Path(json.loads((student / "report.json").read_text())["model"]["id"])
    )
    assert (out / "recovery_loss.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*recover-state*"))
    code = (
        "import sys, json\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r})\n"
        "assert 'prunekit' not in sys.modules\n"
        "print(sum(int((p == 0).sum()) for n, p in m.named_parameters() if n.endswith('proj.weight')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert int(res.stdout.strip().splitlines()[-1]) >= rec["masks"]["pruned_weights"]


def _other_family(tmp_path, tiny_model_dir) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    path = tmp_path / "qwen"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-steps", "0"], "budget of zero"),
        (["--train", "everything"], "unknown trainable set"),
        (["--max-steps", "1", "--teacher", "QWEN"], "is a qwen2 model"),
        (["--max-steps", "1", "--data", "EMPTY"], "no usable training samples"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path, tiny_model_dir, student, corpus, capsys, extra, message
):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    extra = [
        {"QWEN": str(_other_family(tmp_path, tiny_model_dir)), "EMPTY": str(empty)}.get(a, a)
        for a in extra
    ]
    data = [] if "--data" in extra else ["--data", str(corpus)]
    out = tmp_path / "never"
    capsys.readouterr()
    assert main(["recover", str(student), *data, *TRAIN, *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("prunekit:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert not out.exists()


def test_a_leftover_training_state_needs_resume(tmp_path, student, corpus, capsys):
    (tmp_path / ".never.recover-state").mkdir()
    out = tmp_path / "never"
    assert (
        main(
            [
                "recover",
                str(student),
                "--data",
                str(corpus),
                *TRAIN,
                "--max-steps",
                "1",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert "--resume" in capsys.readouterr().err


def test_the_students_humaneval_is_the_reports_before(tmp_path, student, corpus):
    report = json.loads((student / "report.json").read_text())
    report.setdefault("evaluation", {})["humaneval"] = {"pass@1": 0.25, "problems": 164}
    (student / "report.json").write_text(json.dumps(report))
    out = tmp_path / "recovered"
    args = ["recover", str(student), "--data", str(corpus), *TRAIN, "--max-steps", "1"]
    assert main([*args, "-o", str(out)]) == 0
    before = json.loads((out / "report.json").read_text())["evaluation_before"]["humaneval"]
    assert before["pass@1"] == 0.25 and before["from"] == str(student / "report.json")
