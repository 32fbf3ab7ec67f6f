"""`instruct:CORPUS` as calibration data: the corpus's functions as chat-formatted instructions,
HumanEval-overlapping ones dropped, usable wherever a corpus is (windows, recipe steps)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from prunekit.cli import main
from prunekit.data.sources import InstructionSource, resolve_source
from prunekit.data.windows import calibration_windows
from prunekit.errors import PrunekitError
from prunekit.evaluation.humaneval import CHAT_INSTRUCTION, load_problems

CLEAN = '''
def clamp(value, low, high):
    """Return value limited to the closed range [low, high]."""
    if value < low:
        return low
    return min(value, high)
'''
TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture
def folder(tmp_path):
    """One clean function, and one that is a HumanEval problem with its canonical solution."""
    p = load_problems()[0]
    (tmp_path / "funcs.py").write_text(CLEAN + "\n\n" + p.prompt + p.canonical_solution)
    (tmp_path / "notes.txt").write_text("not python")
    return tmp_path


@pytest.fixture
def chat_tok(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = TEMPLATE
    return tok


def test_documents_are_chat_instructions_without_humaneval(folder, chat_tok):
    source = resolve_source(f"instruct:{folder}", "calib")
    assert isinstance(source, InstructionSource) and source.name == f"instruct:{folder}"
    docs = list(source.documents(chat_tok))
    assert len(docs) == 1  # the HumanEval function was dropped
    assert docs[0].startswith("<|user|>" + CHAT_INSTRUCTION[:40])
    assert "<|assistant|>" in docs[0] and "return min(value, high)" in docs[0]
    assert "```" in docs[0]


def test_without_a_chat_template_documents_are_the_functions(folder, tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert list(resolve_source(f"instruct:{folder}", "calib").documents(tok)) == [CLEAN.strip()]


def test_windows_are_cut_from_the_instructions(folder, chat_tok):
    source = resolve_source(f"instruct:{folder}", "calib")
    ids = calibration_windows(source, chat_tok, 1, 16, seed=0)
    text = chat_tok.decode(ids[0])
    assert text and text in list(source.documents(chat_tok))[0] + "\n\n"


def test_a_corpus_without_python_is_one_line(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(PrunekitError, match="needs Python files.*instruct:python"):
        resolve_source(f"instruct:{tmp_path}", "calib")
    with pytest.raises(PrunekitError, match="neither a built-in corpus"):
        resolve_source("instruct:no/such/place", "calib")


def test_a_recipe_step_scores_on_its_own_source(tmp_path, tiny_model_dir, folder):
    (folder / "more.py").write_text(
        "\n\n".join(
            f'def f{i}(x):\n    """Add {i} to x."""\n    y = x + {i}\n    return y\n'
            for i in range(40)
        )
    )
    corpus = Path(sysconfig.get_paths()["stdlib"]) / "heapq.py"
    cal = {"source": str(corpus), "samples": 2, "seq_len": 32, "seed": 0, "batch_size": 2}
    step = {"depth": {"remove": 1, "criterion": "kl", "source": f"instruct:{folder}"}}
    recipe = {
        "model": str(tiny_model_dir),
        "calibration": cal,
        "steps": [step],
        "evaluate": {"perplexity": []},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "-o", str(tmp_path / "out")]) == 0
    depth = json.loads((tmp_path / "out" / "report.json").read_text())["steps"][0]
    assert depth["calibration"]["source"] == f"instruct:{folder}"
    assert depth["calibration"]["description"].startswith("code instructions")

    step["depth"]["source"] = "instruct:no/such/place"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "-o", str(tmp_path / "out2")]) == 2  # before loading
    assert not (tmp_path / "out2").exists()
    step["depth"]["source"] = 3
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "-o", str(tmp_path / "out2")]) == 2
