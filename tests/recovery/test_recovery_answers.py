"""Teacher-answered instructions: only answers that define the function and run in the sandbox are
kept, they are cached with provenance and reused, and `answered:` data trains on them alone."""

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from prunekit.evaluation.generation import Generation
from prunekit.recovery import answers as answers_mod
from prunekit.recovery.answers import AnswerSettings, teacher_answers
from prunekit.recovery.data import build_training_data, instructions_from


@pytest.fixture
def tiny(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(
        tiny_model_dir
    )


def _fake_generation(calls: list[int]):
    """Function bodies in turn (the tiny tokenizer has no chat template: completion mode): one
    that runs, one whose module raises when run, one that does not compile."""

    def fake(model, tokenizer, prompts, **kw):
        calls.append(len(prompts))
        bodies = ["    return 1\n", "    return 1\nraise RuntimeError('boom')\n", "    return (\n"]
        return [[Generation(bodies[i % 3], 5)] for i in range(len(prompts))], {}

    return fake


def test_only_running_answers_are_kept_and_cached(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    items = instructions_from("python", 6, seed=0)
    assert len(items) == 6
    calls: list[int] = []
    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", _fake_generation(calls))
    kept, report = teacher_answers(items, "python", model, tok, tmp_path, AnswerSettings())
    assert calls == [6] and not report["from_cache"]
    assert report["asked"] == 6 and report["kept"] == 2
    assert set(kept) == {items[0].source, items[3].source}
    assert report["verdicts"] == {"runs": 2, "exception": 2, "syntax": 2}
    rows = [json.loads(x) for x in Path(report["cache"]).read_text().splitlines()]
    assert [r["source"] for r in rows] == [i.source for i in items]
    assert all(r["teacher"] == answers_mod.fingerprint(model) for r in rows)

    again, report2 = teacher_answers(items, "python", model, tok, tmp_path, AnswerSettings())
    assert calls == [6] and report2["from_cache"] and again == kept  # no second generation


def test_another_teacher_does_not_reuse_the_cache(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    items = instructions_from("python", 3, seed=0)
    calls: list[int] = []
    monkeypatch.setattr("prunekit.evaluation.generation.generate_batched", _fake_generation(calls))
    teacher_answers(items, "python", model, tok, tmp_path)
    with __import__("torch").no_grad():
        next(model.parameters()).add_(1.0)
    teacher_answers(items, "python", model, tok, tmp_path)
    assert calls == [3, 3]


def test_answered_data_trains_on_kept_answers_only(tiny):
    _, tok = tiny
    items = instructions_from("python", 4, seed=0)
    answer = {items[1].source: items[1].prompt + "\n    return 42\n"}
    data = build_training_data(
        "answered:python", tok, seq_len=256, windows=0, instructions=4, seed=0, answers=answer
    )
    assert data.report["sources"]["answered:python"]["samples"] == 1
    text = tok.decode(data.samples[0].ids)
    assert "return 42" in text
    corpus = build_training_data(
        "instruct:python", tok, seq_len=256, windows=0, instructions=4, seed=0
    )
    assert corpus.report["sources"]["instruct:python"]["samples"] > 1  # corpus answers: all usable
