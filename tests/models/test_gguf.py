"""GGUF loading of a tiny model written with the `gguf` library: weights and vocabulary intact."""

from __future__ import annotations

import torch
from gguf_fixture import tiny_qwen2_with_tokenizer, write_gguf

from prunekit.models.loading import load_model
from prunekit.utils import sha256_file


def test_a_gguf_file_loads_with_its_weights_and_vocabulary(tmp_path):
    model, tokenizer = tiny_qwen2_with_tokenizer()
    path = write_gguf(model, tokenizer, tmp_path / "tiny.gguf")
    lm = load_model(path)
    assert lm.info["source"] == "gguf" and lm.info["gguf_sha256"] == sha256_file(path)
    assert lm.info["architecture"] == "qwen2"
    want = model.state_dict()
    got = lm.model.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k
    assert lm.tokenizer.get_vocab() == tokenizer.get_vocab()
    text = "def add(a, b):\n    return a + b\n"
    assert lm.tokenizer.decode(lm.tokenizer(text, add_special_tokens=False).input_ids) == text
    ids = torch.tensor([tokenizer(text).input_ids])
    with torch.no_grad():
        torch.testing.assert_close(lm.model(ids).logits, model(ids).logits, rtol=0, atol=0)
