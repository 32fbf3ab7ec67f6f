"""Search test helpers: a tiny saved model loaded for the API, small search settings, and the
bodies the faked answer generation returns (the `answering` fixture is in tests/conftest.py)."""

from __future__ import annotations

BODIES = ["    return 1\n", "    x = 2\n    return x\n"]


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
