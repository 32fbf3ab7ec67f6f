"""Training data for recovery: token sequences with per-position loss weights, decontaminated.

A data spec is a comma-separated list of: a built-in corpus name (its calibration split, cut into
windows), `instruct:CORPUS` (code instructions derived from the corpus's Python functions, in
the chat format HumanEval is evaluated in, answered by the corpus's own function),
`answered:CORPUS` (the same instructions answered by the teacher, kept where the answer runs in
the sandbox: recovery/answers.py), or a path (`.jsonl` with {"prompt","response"} or
{"text"} rows, or text files/folders). Held-out splits are never read here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prunekit.data.decontam import decontaminate
from prunekit.data.instruct import Instruction, chat_messages, corpus_functions
from prunekit.data.sources import ANSWERED, INSTRUCT, jsonl_rows, resolve_source
from prunekit.data.windows import calibration_windows
from prunekit.errors import PrunekitError

DATA_SEED_OFFSET = 1  # recovery windows are drawn with seed+1, apart from the pruning calibration


@dataclass
class Sample:
    """Token ids and the loss weight of each position's next-token distribution."""

    ids: list[int]
    weights: list[float]


@dataclass
class TrainingData:
    samples: list[Sample]
    report: dict = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(len(s.ids) for s in self.samples)


def _chat_sample(tokenizer, messages: list[dict], seq_len: int) -> Sample | None:
    """Tokens of a chat exchange; loss only where the assistant's reply is predicted."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        return None
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (p_ids + r_ids)[:seq_len]
    if len(ids) <= len(p_ids):
        return None
    weights = [0.0] * (len(p_ids) - 1) + [1.0] * (len(ids) - len(p_ids) + 1)
    return Sample(ids, weights[: len(ids)])


def _prompt_sample(tokenizer, prompt: str, response: str, seq_len: int) -> Sample | None:
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return _chat_sample(tokenizer, msgs, seq_len)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = (p_ids + tokenizer(response, add_special_tokens=False)["input_ids"])[:seq_len]
    if len(ids) <= len(p_ids):
        return None
    return Sample(ids, [0.0] * (len(p_ids) - 1) + [1.0] * (len(ids) - len(p_ids) + 1))


def _instruction_sample(tokenizer, ins: Instruction, seq_len: int) -> Sample | None:
    """Chat format (as HumanEval's chat mode) for instruct models, completion format otherwise."""
    if getattr(tokenizer, "chat_template", None):
        return _chat_sample(tokenizer, chat_messages(ins), seq_len)
    head, _, body = ins.response.partition(ins.prompt)
    return _prompt_sample(tokenizer, head + ins.prompt, body, seq_len)


def instructions_from(corpus: str, limit: int, seed: int) -> list[Instruction]:
    """Corpus-answered instructions from the calibration split's Python files (seeded sample)."""
    found = corpus_functions(resolve_source(corpus, "calib").files)
    random.Random(seed).shuffle(found)
    return found[:limit]


def answered_corpora(spec: str) -> list[str]:
    """The corpora of the spec's `answered:` parts (their instructions need teacher answers)."""
    parts = (p.strip() for p in spec.split(","))
    return [p[len(ANSWERED) :] for p in parts if p.startswith(ANSWERED)]


def _jsonl_rows(path: Path) -> list[dict]:
    needs = '{"prompt": ..., "response": ...} or {"text": ...}'
    rows = []
    for n, row in jsonl_rows(path, needs):
        ok = isinstance(row, dict) and (
            isinstance(row.get("text"), str)
            or (isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str))
        )
        if not ok:
            raise PrunekitError(f"{path}:{n} needs {needs}")
        rows.append(row)
    return rows


def _clean(sample_texts: list[str], samples: list[Sample]) -> tuple[list[Sample], int]:
    """The samples whose text shares no long n-gram with HumanEval, and how many were dropped."""
    keep, removed = decontaminate(sample_texts)
    return [samples[i] for i in keep], removed


def build_training_data(
    spec: str,
    tokenizer,
    *,
    seq_len: int,
    windows: int,
    instructions: int,
    seed: int,
    answers: dict[str, str] | None = None,
    windows_only: bool = False,
) -> TrainingData:
    """Every sample the spec names (tokenized for the student), decontaminated, in a seeded order.

    `answers`: the checked teacher answers (key: provenance) that `answered:` parts train on.
    `windows_only`: `instruct:` parts too are cut into `windows` windows of `seq_len` tokens
    (block reconstruction needs equal lengths; the loss then covers every position).
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise PrunekitError("--data is empty; name a corpus (python), instruct:python or a .jsonl")
    samples: list[Sample] = []
    report: dict = {"spec": spec, "sources": {}}
    for part in parts:
        texts: list[str] = []
        made: list[Sample] = []
        if part.startswith(ANSWERED) or (part.startswith(INSTRUCT) and not windows_only):
            by_teacher = part.startswith(ANSWERED)
            for ins in instructions_from(part.partition(":")[2], instructions, seed):
                if by_teacher:
                    if ins.source not in (answers or {}):
                        continue  # the teacher's answer did not run
                    ins = Instruction(ins.prompt, answers[ins.source], ins.source)
                s = _instruction_sample(tokenizer, ins, seq_len)
                if s is not None:
                    made.append(s)
                    texts.append(ins.prompt + "\n" + ins.response)
        elif part.endswith(".jsonl") and Path(part).is_file():
            for row in _jsonl_rows(Path(part)):
                if "prompt" in row:
                    s = _prompt_sample(tokenizer, row["prompt"], row["response"], seq_len)
                    text = row["prompt"] + "\n" + row["response"]
                else:
                    ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"][:seq_len]
                    s = Sample(ids, [1.0] * len(ids)) if len(ids) > 1 else None
                    text = row["text"]
                if s is not None:
                    made.append(s)
                    texts.append(text)
        else:
            source = resolve_source(part, "calib")
            ids = calibration_windows(source, tokenizer, windows, seq_len, seed + DATA_SEED_OFFSET)
            made = [Sample(row.tolist(), [1.0] * seq_len) for row in ids]
            texts = [tokenizer.decode(row) for row in ids]
        kept, removed = _clean(texts, made)
        report["sources"][part] = {
            "samples": len(kept),
            "removed_humaneval_overlap": removed,
            "tokens": sum(len(s.ids) for s in kept),
        }
        samples += kept
    if not samples:
        raise PrunekitError(f"--data {spec} gave no usable training samples; name other data")
    random.Random(seed).shuffle(samples)
    report["samples"] = len(samples)
    report["tokens"] = sum(len(s.ids) for s in samples)
    return TrainingData(samples, report)


def collate(samples: list[Sample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and loss weights (0 on padding)."""
    width = max(len(s.ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    weights = torch.zeros((len(samples), width))
    for r, s in enumerate(samples):
        ids[r, : len(s.ids)] = torch.tensor(s.ids)
        mask[r, : len(s.ids)] = 1
        weights[r, : len(s.weights)] = torch.tensor(s.weights)
    return ids, mask, weights
