"""Calibration sets: every form of calibration data as one typed set of batches, counted per part.

A spec is a built-in corpus (`python`), `instruct:CORPUS` (the corpus's functions as chat-format
code instructions), `answered:CORPUS` (the same instructions answered by the model being pruned,
kept where the answer runs in the sandbox), a path, or several of these joined by commas
(`python,answered:python`). A mixture splits `samples` evenly: each of k parts asks for
samples // k, and the first samples % k parts one more. Corpus and instruct parts give that many
windows of `seq_len` tokens (N × T batches of `batch_size`); an answered part asks that many
instructions and gives one 1 × T sequence per kept answer (T ≤ seq_len). A single corpus, path
or instruct spec gives exactly the windows and batches it gave before parts were counted.

HumanEval: an instruction or answer sharing a 13-gram with a HumanEval prompt or solution is
dropped and counted per part (`removed_humaneval_overlap`); a corpus or path is used as given (None:
on windows the check also flags generic code such as `[1, 2, 3, 4, 5, 6, 7`).

Weights: steps that only read activation statistics or gradients (Wanda, SparseGPT, magnitude,
OWL, width, SAAP) use every position of every sequence unweighted: the whole chat sequence is
task-format text. Depth scoring and NeuroAL's alignment objective read `weights`: 1 on an
answer's positions, 0 on its prompt, and 1 everywhere in a corpus window of a mixture; None when
there is no answered part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunekit.data.sources import (
    ANSWERED,
    INSTRUCT,
    InstructionSource,
    Source,
    TextSource,
    resolve_source,
)
from prunekit.errors import PrunekitError

CORPUS, INSTRUCTIONS, ANSWERS, TOKENS = "corpus", "instruct", "answered", "tokens"


@dataclass(frozen=True)
class PartSpec:
    """One part of a calibration spec: as written, its kind, and the corpus or path it reads."""

    text: str
    kind: str
    data: str


def _part(text: str) -> PartSpec:
    if text.startswith(ANSWERED):
        return PartSpec(text, ANSWERS, text[len(ANSWERED) :])
    if text.startswith(INSTRUCT):
        return PartSpec(text, INSTRUCTIONS, text[len(INSTRUCT) :])
    return PartSpec(text, CORPUS, text)


def parse_spec(spec: str) -> list[PartSpec]:
    """The parts of a spec: the whole spec where it (or what follows its `instruct:`/`answered:`)
    is an existing path, since a path may hold a comma; else its comma-separated parts."""
    whole = _part(spec.strip())
    if whole.data and Path(whole.data).expanduser().exists():
        return [whole]
    parts = [_part(p.strip()) for p in spec.split(",") if p.strip()]
    if not parts:
        raise PrunekitError(
            f"calibration '{spec}' names no data; give e.g. python or python,answered:python"
        )
    seen = [p.text for p in parts]
    twice = next((t for t in seen if seen.count(t) > 1), None)
    if twice:
        raise PrunekitError(
            f"calibration '{spec}' names '{twice}' twice; give each part once (each gets an "
            "even share of the samples)"
        )
    return parts


def _resolve(part: PartSpec) -> Source:
    """The part's source; an answered part's corpus must hold Python functions to ask for."""
    if part.kind != ANSWERS:
        return resolve_source(part.text, "calib")
    if part.data.startswith((ANSWERED, INSTRUCT)) or not part.data:
        raise PrunekitError("answered:CORPUS takes a corpus name or a path, e.g. answered:python")
    corpus = resolve_source(part.data, "calib")
    if not isinstance(corpus, TextSource) or not any(p.suffix == ".py" for p in corpus.files):
        raise PrunekitError(
            f"'{part.data}' has no Python files to make instructions from; name a corpus with "
            ".py files (answered:python)"
        )
    return corpus


def check_spec(spec: str) -> list[PartSpec]:
    """Parse and resolve every part without a model (before loading one); a bad part is one line
    naming it."""
    parts = parse_spec(spec)
    for part in parts:
        try:
            _resolve(part)
        except PrunekitError as exc:
            raise PrunekitError(f"calibration part '{part.text}': {exc}") from None
    return parts


def has_answered(spec: str | torch.Tensor) -> bool:
    """Whether a spec has an `answered:` part (it needs the model to answer, and gives sequences
    of their own lengths)."""
    return isinstance(spec, str) and any(p.kind == ANSWERS for p in parse_spec(spec))


def shares(samples: int, parts: int) -> list[int]:
    """`samples` split evenly over `parts`: samples // parts each, the first samples % parts
    one more."""
    return [samples // parts + (1 if i < samples % parts else 0) for i in range(parts)]


@dataclass
class CalibrationPart:
    """What one part gave: `share` samples asked, `sequences` (windows or kept answers) given."""

    source: str
    kind: str
    description: str
    licence: str
    share: int
    sequences: int = 0
    tokens: int = 0
    scored_tokens: int = 0
    removed_humaneval_overlap: int | None = None  # instructions or answers dropped; None: corpus
    answers: dict | None = None  # answered parts: asked, kept, verdicts, cache

    def to_dict(self) -> dict:
        out = {
            "source": self.source,
            "kind": self.kind,
            "description": self.description,
            "licence": self.licence,
            "share": self.share,
            "sequences": self.sequences,
            "tokens": self.tokens,
            "scored_tokens": self.scored_tokens,
            "removed_humaneval_overlap": self.removed_humaneval_overlap,
        }
        if self.answers is not None:
            out["answers"] = self.answers
        return out


@dataclass
class CalibrationSet:
    """Batches (N × T corpus windows, 1 × T answers), depth weights (None without an answered
    part), and what each part gave."""

    spec: str
    batches: list[torch.Tensor]
    weights: list[torch.Tensor] | None
    parts: list[CalibrationPart]
    seq_len: int
    seed: int
    described: dict = field(default_factory=dict)  # extra report keys (token ids given)

    @property
    def ragged(self) -> bool:
        """Whether the sequences differ in length (an answered part)."""
        return len({b.shape[1] for b in self.batches}) > 1

    def windows(self) -> torch.Tensor:
        """Every sequence as one N × T tensor (equal lengths only)."""
        if self.ragged:
            raise PrunekitError(
                f"calibration '{self.spec}' has sequences of different lengths (answered parts); "
                "read its batches instead of one window tensor"
            )
        return torch.cat(self.batches)

    def describe(self) -> dict:
        """The report's `calibration` section: totals, and per part what it gave."""
        parts = [p.to_dict() for p in self.parts]
        removed = [p.removed_humaneval_overlap for p in self.parts]
        out = {
            "source": self.spec,
            "description": " + ".join(p.description for p in self.parts),
            "licence": "; ".join(dict.fromkeys(p.licence for p in self.parts)),
            "samples": sum(p.sequences for p in self.parts),
            "seq_len": self.seq_len,
            "seed": self.seed,
            "tokens": sum(p.tokens for p in self.parts),
            "scored_tokens": sum(p.scored_tokens for p in self.parts),
            "removed_humaneval_overlap": None
            if all(r is None for r in removed)
            else sum(r or 0 for r in removed),
            **self.described,
            "parts": parts,
        }
        if len(self.parts) == 1 and self.parts[0].answers is not None:
            out["answers"] = self.parts[0].answers
        return out


@dataclass(frozen=True)
class _Texts:
    """Documents already read (an instruct part's clean instructions), as a Source."""

    name: str
    texts: tuple[str, ...]
    description: str
    licence: str

    def documents(self, tokenizer=None) -> Iterator[str]:
        yield from self.texts


@dataclass(frozen=True)
class _Request:
    """What every part is built with."""

    model: nn.Module | None
    tokenizer: object
    seq_len: int
    seed: int
    device: torch.device | str
    progress: bool


def _window_part(part: PartSpec, share: int, req: _Request) -> tuple[torch.Tensor, CalibrationPart]:
    from prunekit.data.windows import calibration_windows

    source = _resolve(part)
    removed = None  # a corpus or path is used as given (a 13-gram check flags generic code too)
    if isinstance(source, InstructionSource):  # the same documents, with the dropped ones counted
        texts, removed = source.clean_texts(req.tokenizer)
        source = _Texts(source.name, tuple(texts), source.description, source.licence)
    windows = calibration_windows(source, req.tokenizer, share, req.seq_len, req.seed)
    described = CalibrationPart(
        part.text,
        part.kind,
        source.description,
        source.licence,
        share,
        sequences=windows.shape[0],
        tokens=int(windows.numel()),
        scored_tokens=int(windows.numel()),
        removed_humaneval_overlap=removed,
    )
    return windows, described


def _answered_part(
    part: PartSpec, share: int, req: _Request
) -> tuple[list[torch.Tensor], list[torch.Tensor], CalibrationPart]:
    from prunekit.calibration.answered import answered_batches

    if req.model is None:
        raise PrunekitError(
            f"calibration part '{part.text}' is answered by the model being pruned; pass the "
            "model (build_calibration), not only the tokenizer"
        )
    corpus = _resolve(part)
    batches, weights, desc = answered_batches(
        req.model, req.tokenizer, part.data, share, req.seq_len, req.seed, req.device, req.progress
    )
    described = CalibrationPart(
        part.text,
        part.kind,
        desc["description"],
        corpus.licence,
        share,
        sequences=len(batches),
        tokens=desc["tokens"],
        scored_tokens=desc["scored_tokens"],
        removed_humaneval_overlap=desc["removed_humaneval_overlap"],
        answers=desc["answers"],
    )
    return batches, weights, described


def _tokens_set(ids: torch.Tensor, seed: int, batch_size: int) -> CalibrationSet:
    part = CalibrationPart(
        "token ids",
        TOKENS,
        "token ids given by the caller",
        "user-supplied",
        ids.shape[0],
        sequences=ids.shape[0],
        tokens=int(ids.numel()),
        scored_tokens=int(ids.numel()),
    )
    return CalibrationSet(
        "token ids", list(ids.split(batch_size)), None, [part], ids.shape[1], seed
    )


def build_calibration(
    spec: str | torch.Tensor,
    model: nn.Module | None,
    tokenizer,
    *,
    samples: int,
    seq_len: int,
    seed: int,
    batch_size: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> CalibrationSet:
    """The calibration set a spec names (see the module docstring for the forms and the share
    rule). `model` answers `answered:` parts (answers cached per model); None where none is."""
    if isinstance(spec, torch.Tensor):
        return _tokens_set(spec, seed, batch_size)
    if samples < 1 or seq_len < 2 or batch_size < 1:
        raise PrunekitError("need --calib-samples ≥ 1, --seq-len ≥ 2 and --batch-size ≥ 1")
    parts = parse_spec(spec)
    if len(parts) > samples:
        raise PrunekitError(
            f"calibration '{spec}' has {len(parts)} parts but {samples} samples; give at least "
            "one sample per part"
        )
    req = _Request(model, tokenizer, seq_len, seed, device, progress)
    batches: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    described: list[CalibrationPart] = []
    for part, share in zip(parts, shares(samples, len(parts))):
        if part.kind == ANSWERS:
            got, w, desc = _answered_part(part, share, req)
        else:
            windows, desc = _window_part(part, share, req)
            got = list(windows.split(batch_size))
            w = [torch.ones(b.shape, dtype=torch.float32) for b in got]
        batches += got
        weights += w
        described.append(desc)
    answered = any(p.kind == ANSWERS for p in parts)
    return CalibrationSet(spec, batches, weights if answered else None, described, seq_len, seed)
