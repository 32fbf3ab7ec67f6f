"""Search fixtures: the tiny saved model answering instructions with code that runs (generation
faked, the sandbox real), so `answered:python` gives held-out answers offline and fast."""

from __future__ import annotations

import pytest

from prunekit.evaluation.generation import Generation

BODIES = ["    return 1\n", "    x = 2\n    return x\n"]


@pytest.fixture
def answering(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEKIT_HOME", str(tmp_path / "home"))

    def fake(model, tokenizer, prompts, **kw):
        return [[Generation(BODIES[i % 2], 5)] for i in range(len(prompts))], {}

    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", fake)


def tiny_lm(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


SMALL = dict(
    calib_samples=8,
    seq_len=128,
    multiple=8,
    ffn_levels=(1.0, 0.75, 0.5, 0.25),
    offspring=4,
    progress=False,
)
