"""Teacher-answered code instructions: the dense teacher writes each corpus function from its
signature and docstring (as in HumanEval's chat mode), and an answer is kept only if it defines
that function and runs in the sandbox. Answers are cached as JSONL with provenance and reused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from prunekit.data.instruct import Instruction
from prunekit.evaluation.humaneval import (
    Problem,
    build_prompt,
    default_mode,
    extract_code,
    stop_sequences,
    truncate_at_stops,
)
from prunekit.evaluation.sandbox import Check, Limits

ANSWERED = "answered:"
SANDBOX_LIMITS = Limits(wall_s=5.0, cpu_s=5)


@dataclass(frozen=True)
class AnswerSettings:
    """How the teacher answers: generation length and batch (part of the cache key)."""

    max_new_tokens: int = 384
    batch_size: int = 8


def fingerprint(model: nn.Module) -> str:
    """A short identity of a model's weights and config (the cache must not outlive its teacher)."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_file(
    root: Path, teacher: str, corpus: str, items: list[Instruction], s: AnswerSettings
) -> Path:
    """One JSONL per (teacher, corpus, instruction set, settings)."""
    key = hashlib.sha256(
        json.dumps([teacher, corpus, [i.source for i in items], s.max_new_tokens]).encode()
    ).hexdigest()[:16]
    return root / "instruct" / f"{corpus}-{teacher}-{key}.jsonl"


def _entry_point(ins: Instruction) -> str:
    return ins.source.rpartition(":")[2]


def _prompt(ins: Instruction) -> str:
    """Signature + docstring ending in a newline, as HumanEval prompts do (completion continues it)."""
    return ins.prompt.rstrip() + "\n"


def _answer_code(ins: Instruction, text: str, mode: str) -> str:
    """The full function the teacher wrote (chat: the fenced block; completion: prompt + body)."""
    text = truncate_at_stops(text, stop_sequences(mode))
    return extract_code(text) if mode == "chat" else _prompt(ins) + text


def generate_answers(
    items: list[Instruction],
    teacher: nn.Module,
    tokenizer,
    settings: AnswerSettings,
    device: torch.device,
    progress: bool = True,
) -> list[dict]:
    """Generate (greedy) and sandbox-check one answer per instruction; rows with provenance."""
    from prunekit.evaluation.generation import generate_batched
    from prunekit.evaluation.sandbox import check_sandbox_can_score, run_many

    check_sandbox_can_score()  # before generating: the answers could not be checked anyway
    mode = default_mode(tokenizer)
    problems = [Problem(i.source, _prompt(i), _entry_point(i), "") for i in items]
    gens, _ = generate_batched(
        teacher,
        tokenizer,
        [build_prompt(p, mode, tokenizer) for p in problems],
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        stops=stop_sequences(mode),
        add_special_tokens=mode == "completion",
        device=device,
        progress=progress,
        desc="teacher answers",
    )
    codes = [_answer_code(i, g[0].text, mode) for i, g in zip(items, gens)]
    results = run_many(
        [Check(c, "pass\n", _entry_point(i)) for i, c in zip(items, codes)], SANDBOX_LIMITS
    )
    return [
        {
            "source": i.source,
            "prompt": i.prompt,
            "response": code,
            "kept": r.passed,
            "verdict": "runs" if r.passed else (r.error or "failed"),
            "mode": mode,
        }
        for i, code, r in zip(items, codes, results)
    ]


def teacher_answers(
    items: list[Instruction],
    corpus: str,
    teacher: nn.Module,
    tokenizer,
    root: Path,
    settings: AnswerSettings = AnswerSettings(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[dict[str, str], dict]:
    """Checked answers (provenance → code) from the cache, else generated and cached; + a report."""
    teacher_id = fingerprint(teacher)
    path = cache_file(root, teacher_id, corpus, items, settings)
    cached = path.is_file()
    if cached:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = generate_answers(items, teacher, tokenizer, settings, torch.device(device), progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.write_text("".join(json.dumps({**r, "teacher": teacher_id}) + "\n" for r in rows))
        tmp.replace(path)
    kept = {r["source"]: r["response"] for r in rows if r["kept"]}
    verdicts: dict[str, int] = {}
    for r in rows:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    report = {
        "cache": str(path),
        "from_cache": cached,
        "asked": len(rows),
        "kept": len(kept),
        "verdicts": verdicts,
    }
    return kept, report
