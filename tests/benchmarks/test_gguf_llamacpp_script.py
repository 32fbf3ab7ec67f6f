"""benchmarks/gguf_llamacpp.py, its pure parts: the tables it renders from a recorded JSON
(hand-made here; the real cells run on the benchmark lane), and that speed ratios are only taken
between cells timed on the same machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from script_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gguf_llamacpp.py"


gg = load_script("gguf_llamacpp")
A = {"cpu": "Machine A", "cpu_flags": ["avx512_bf16"]}
B = {"cpu": "Machine B", "cpu_flags": ["avx2"]}


def _timed(file_mib: float, decode: float, machine: dict) -> dict:
    return {
        "file_mib": file_mib,
        "weights_mib": None,
        "peak_rss_mib": 2 * file_mib,
        "prefill_tok_s": 100.0,
        "decode_tok_s": decode,
        "machine": machine,
    }


def _cell(solved: list[bool], file_mib: float, decode: float, machine: dict) -> dict:
    return {
        **_timed(file_mib, decode, machine),
        "humaneval": {"pass@1": sum(solved) / len(solved), "problems": len(solved), "dtype": "f16"},
        "solved": {f"HumanEval/{i}": s for i, s in enumerate(solved)},
        "runtime": "llama-cpp-python test",
    }


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """dense f16 solves 0-7 of 10 on machine A; vocab-wide q8_0 solves 0-6 on A (decode 1.5×);
    dense q8_0 solves 0-7 on machine B. --speed timed dense f16 and vocab-wide q8_0 on B."""
    data = {
        "cells": {
            "dense:f16": _cell([i < 8 for i in range(10)], 1000.0, 20.0, A),
            "vocab-wide:q8_0": _cell([i < 7 for i in range(10)], 400.0, 30.0, A),
            "dense:q8_0": _cell([i < 8 for i in range(10)], 600.0, 90.0, B),
        },
        "speed": {
            "dense:f16": _timed(1000.0, 10.0, B),
            "vocab-wide:q8_0": _timed(400.0, 25.0, B),
        },
    }
    monkeypatch.setattr(gg, "OUT", tmp_path / "gguf_test")
    monkeypatch.setattr(gg, "RECORD", tmp_path / "gguf_test.json")
    gg.RECORD.write_text(json.dumps(data))
    return tmp_path


def _rendered(folder: Path) -> str:
    gg.render()
    return (folder / "gguf_test.md").read_text()


def test_decode_ratio_only_on_one_machine(recorded):
    text = _rendered(recorded)
    # same machine as dense f16: 30 / 20; another machine: no ratio
    assert "| vocab-wide | llama.cpp q8_0 | 400.0 | 800 | 100.0 | 30.0 | 70.0% (10) |" in text
    assert "| 0.875 | 1.50 |" in text
    assert "| dense | llama.cpp q8_0 | 600.0 | 1200 | 100.0 | 90.0 | 80.0% (10) |" in text
    assert "| 1.000 | — |" in text
    assert "keeps 87.5% of dense f16 pass@1 (target ≥ 97%) and decodes 1.50×" in text


def test_speed_grid_per_machine(recorded):
    text = _rendered(recorded)
    assert "Size and speed on one machine (`--speed`; Machine B, CPU flags avx2)" in text
    # decode 25 / 10 on machine B; file 400 / 1000
    assert "| vocab-wide | llama.cpp q8_0 | 400.0 | 800 | 100.0 | 25.0 | 2.50 | 0.400 |" in text
    assert "| dense | llama.cpp f16 | 1000.0 | 2000 | 100.0 | 10.0 | 1.00 | 1.000 |" in text


def test_a_speed_grid_without_dense_f16_gives_no_ratio(recorded):
    data = json.loads(gg.RECORD.read_text())
    del data["speed"]["dense:f16"]
    data["cells"]["vocab-wide:q8_0"]["machine"] = B  # timed elsewhere than dense f16
    gg.RECORD.write_text(json.dumps(data))
    text = _rendered(recorded)
    assert "| vocab-wide | llama.cpp q8_0 | 400.0 | 800 | 100.0 | 25.0 | — | — |" in text
    assert "at a speed timed on another machine than dense f16's" in text


def test_speed_cells_are_checked_before_any_work(capsys):
    import subprocess

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--speed", "dense:f32"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "unknown cells/models ['dense:f32']" in done.stderr


def test_parallel_check_and_batched_cells_are_labelled(recorded):
    data = json.loads(gg.RECORD.read_text())
    data["cells"]["dense:q8_0"]["batching"] = (
        "llama.cpp, 8 sequences per batch, a finished one replaced"
    )
    data["parallel"] = {
        "dense:8": {
            "prompts": 20,
            "identical": 19,
            "differ": ["HumanEval/3"],
            "times": {"parallel_1": {"wall_s": 300.0}, "parallel_8": {"wall_s": 100.0}},
            "machine": B,
        }
    }
    gg.RECORD.write_text(json.dumps(data))
    text = _rendered(recorded)
    assert "| dense | llama.cpp q8_0 (8 sequences per batch) |" in text
    assert "identical greedy text on 19/20 of the first HumanEval prompts" in text
    assert "wall 100 s vs 300 s (3.00× faster; Machine B)" in text


def test_each_step_is_paired_against_its_own_reference(recorded):
    data = json.loads(gg.RECORD.read_text())
    # vocab-wide f16 solves 0-7 and 9 (+1 / −0 vs dense f16); its q8_0 solves 0-6 (−2 vs its f16)
    data["cells"]["vocab-wide:f16"] = _cell([i != 8 for i in range(10)], 800.0, 25.0, A)
    gg.RECORD.write_text(json.dumps(data))
    text = _rendered(recorded)
    assert "| vocab-wide | vs dense, both f16 | 80.0% → 90.0% | +1 / −0 (p = 1.00) |" in text
    assert "| vocab-wide | q8_0 vs f16 | 90.0% → 70.0% | +0 / −2 (p = 0.50) |" in text
    assert "| dense | q8_0 vs f16 | 80.0% → 80.0% | +0 / −0 (p = 1.00) |" in text
    assert "vs transformers" not in text  # no transformers cell recorded


def test_a_divergence_is_located_and_both_margins_recorded():
    import numpy as np
    import torch

    class Tok:  # one token per character, ids = code points
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

        def decode(self, ids):
            return "".join(map(chr, ids))

    class Model:  # the logit of token t is t / 100 everywhere (so "b" beats "a" by 0.01)
        def __call__(self, ids):
            return type(
                "Out", (), {"logits": torch.arange(200.0)[None, None].expand(1, 5, 200) / 100}
            )

    lm = type("LM", (), {"tokenizer": Tok(), "model": Model()})()
    seen = []

    class LlamaLM:
        def logits(self, ids):
            seen.append(ids)
            return -np.arange(200.0)[None].repeat(len(ids), 0)  # llama.cpp prefers "a"

    backend = type("B", (), {"lm": LlamaLM()})()
    got = gg._divergence(lm, backend, [1, 2], "xyb!", "xya?")
    assert seen == [[1, 2, ord("x"), ord("y")]]  # prompt + the common prefix
    assert got["first_differing_token"] == 2 and got["picks"] == ["b", "a"]
    assert got["logit_margin_transformers"] == pytest.approx(0.01)
    assert got["logit_margin_llamacpp"] == pytest.approx(-1.0)
    assert gg._divergence(lm, backend, [1], "xy", "xyz") == {}  # a prefix: a stop ended one


def test_agreement_divergences_are_rendered(recorded):
    data = json.loads(gg.RECORD.read_text())
    row = {"task_id": "HumanEval/10", "identical": False, "first_differing_token": 57}
    row |= {"picks": [" that", "ic"], "logit_margin_transformers": 0.018}
    row["logit_margin_llamacpp"] = -0.05
    data["agreement"] = {
        "vocab-wide": {"prompts": 20, "identical": 19, "prompt_tokens_identical": 20, "rows": [row]}
    }
    gg.RECORD.write_text(json.dumps(data))
    text = _rendered(recorded)
    assert "HumanEval/10 differs at token 57: transformers ' that', llama.cpp 'ic'" in text
    assert "+0.018 in transformers, -0.050 in llama.cpp" in text
