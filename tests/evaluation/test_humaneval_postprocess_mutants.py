"""Completion post-processing: what run_humaneval hands to build_check after the stop sequences
and code extraction (generation and the sandbox replaced by stand-ins), and the generation stop
rule on a character tokenizer. Mutants this kills: tests/MUTATION.md §6."""

from __future__ import annotations

from types import SimpleNamespace

from prunekit.evaluation import generation, sandbox
from prunekit.evaluation import humaneval as he
from prunekit.evaluation.generation import Generation, _Row, _StopRule
from prunekit.evaluation.sandbox import ExecResult


def test_run_humaneval_cuts_and_extracts_before_assembling(monkeypatch):
    """Completion mode: the body up to the first stop after the prompt; chat mode: the code of
    the prefilled block, placed after the stub (generation and the sandbox are stand-ins)."""
    problem = he.load_problems(limit=1)[0]
    sig = "def has_close_elements(numbers, threshold):\n    return True"
    texts = {
        "completion": "    return True\n\n\ndef helper():\n    pass\n",
        "chat": sig + "\n```\n\nThis works because...",
    }
    want = {
        "completion": problem.prompt + "    return True\n\n",
        "chat": problem.prompt + "\n    pass\n\n\n" + sig + "\n",
    }
    seen: list = []

    def fake_run_many(checks, limits, workers=None, progress=None):
        seen.extend(checks)
        return [ExecResult(False, "assertion", "stand-in") for _ in checks]

    monkeypatch.setattr(sandbox, "run_many", fake_run_many)
    monkeypatch.setattr(sandbox, "sandbox_identity", lambda: {"same_uid": False})
    chat_tok = SimpleNamespace(
        chat_template="stand-in",
        apply_chat_template=lambda messages, **_: "<user>" + messages[0]["content"] + "<bot>",
    )
    for mode in ("completion", "chat"):
        seen.clear()
        monkeypatch.setattr(
            generation,
            "generate_batched",
            lambda *a, _t=texts[mode], **k: ([[Generation(_t, 3)]], {"generated_tokens": 3}),
        )
        he.run_humaneval(None, chat_tok, mode=mode, limit=1, progress=False)
        assert [c.candidate for c in seen] == [want[mode]], mode


class _CharTokenizer:
    """Token i is chr(i); 1 is EOS, 0 is padding."""

    eos_token_id, pad_token_id = 1, 0

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


def _rule(stops: tuple[str, ...], budget: int) -> _StopRule:
    config = SimpleNamespace(eos_token_id=1, pad_token_id=0)
    return _StopRule(_CharTokenizer(), SimpleNamespace(generation_config=config), stops, budget)


def _push(rule: _StopRule, text: str) -> list[bool]:
    """Push `text` one character per token; whether the row was done after each."""
    row, done = _Row(0, 0, None), []
    for ch in text:
        rule.push(row, ord(ch))
        done.append(row.done)
    return done


def test_stop_rule_ends_rows_at_the_budget_at_a_stop_across_tokens_and_at_eos():
    assert _push(_rule((), 3), "abc") == [False, False, True]
    assert _push(_rule(("zz",), 2), "ab") == [False, True]  # budget, with stops that never came
    assert _push(_rule(("ab",), 10), "xab") == [False, False, True]  # "a" + "b": two tokens
    assert _push(_rule(("",), 10), "ab") == [False, False]  # an empty stop is no stop
    eos, pad = _Row(0, 0, None), _Row(0, 0, None)
    rule = _rule((), 10)
    rule.push(eos, 1)
    rule.push(pad, 0)
    assert (eos.tokens, eos.done, pad.tokens, pad.done) == ([1], True, [], True)
