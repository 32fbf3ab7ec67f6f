"""The code-evaluation part of `prunekit eval`: arguments, bad input, sections returned."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from prunekit.cli import eval_code
from prunekit.errors import PrunekitError
from prunekit.models.loading import LoadedModel


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    eval_code.register_args(p)
    return p.parse_args(["tiny", *argv, "--no-progress"])


def byte_tokenizer():
    """A 257-token byte-level tokenizer without a chat template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


@pytest.fixture(scope="module")
def loaded():
    from transformers import AutoModelForCausalLM

    from conftest import tiny_config

    cfg = tiny_config("qwen2")
    cfg.vocab_size = 257
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    return LoadedModel(model=model, tokenizer=byte_tokenizer(), info={})


def test_nothing_asked_returns_nothing(loaded):
    assert eval_code.run(_args(), loaded, torch.device("cpu"), None) == {}


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--humaneval", "--limit", "0"], "--limit"),
        (["--humaneval", "--limit", "-3"], "--limit"),
        (["--humaneval", "--samples", "4"], "--temperature"),
        (["--humaneval", "--mode", "chat", "--limit", "1"], "--mode completion"),
        (["--speed", "--speed-repeats", "0"], "--speed-repeats"),
    ],
)
def test_bad_input_is_one_line(loaded, argv, match):
    with pytest.raises(PrunekitError, match=match) as exc:
        eval_code.run(_args(*argv), loaded, torch.device("cpu"), None)
    assert "\n" not in str(exc.value)


def test_humaneval_section_and_jsonl(loaded, tmp_path, capsys):
    args = _args("--humaneval", "--limit", "2", "--max-new-tokens", "6", "--exec-timeout", "5")
    out = eval_code.run(args, loaded, torch.device("cpu"), tmp_path)
    he, energy = out["humaneval"], out["energy"]
    assert he["mode"] == "completion" and he["limited"] and he["problems"] == 2
    assert he["problems_file"] == eval_code.PROBLEMS_FILE
    rows = [json.loads(x) for x in (tmp_path / eval_code.PROBLEMS_FILE).read_text().splitlines()]
    assert len(rows) == 2
    assert energy["energy_j"] >= 0 and energy["method"] in ("rapl", "codecarbon", "estimate")
    if energy["method"] == "estimate":
        assert energy["measured"] is False and "ESTIMATE" in energy["note"]
    assert "HumanEval [completion" in capsys.readouterr().out


def test_speed_section(loaded):
    args = _args(
        "--speed",
        "--speed-prompt-len",
        "16",
        "--speed-decode-steps",
        "3",
        "--speed-batch",
        "2",
        "--speed-repeats",
        "2",
    )
    sp = eval_code.run(args, loaded, torch.device("cpu"), None)["speed"]
    assert sp["prefill"]["prompt_len"] == 16 and sp["prefill"]["tokens_per_s"] > 0
    assert len(sp["prefill"]["runs_s"]) == 2
    assert set(sp["decode"]) >= {"batch_1", "batch_2"}
    assert sp["params"]["total"] == sum(p.numel() for p in loaded.model.parameters())
    fl = sp["flops_per_token"]
    assert fl["dense"] >= fl["ideal_sparse"] > 0
    assert sp["memory"]["peak_rss_mb"] > 0 and sp["disk"]["bytes"] is None
