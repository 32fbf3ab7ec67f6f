"""Keep evaluation sets out of training data: drop any sample sharing a long n-gram with HumanEval."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

NGRAM = 13  # the GPT-3 / Codex decontamination length, on word and punctuation tokens
_TOKEN = re.compile(r"\w+|[^\w\s]")


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    toks = _TOKEN.findall(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


@lru_cache(maxsize=4)
def humaneval_ngrams(n: int = NGRAM) -> frozenset[tuple[str, ...]]:
    """n-grams of every HumanEval prompt and canonical solution (the evaluation set's text)."""
    from prunekit.evaluation.humaneval import load_problems

    grams: set[tuple[str, ...]] = set()
    for p in load_problems():
        grams |= ngrams(p.prompt, n) | ngrams(p.prompt + p.canonical_solution, n)
    return frozenset(grams)


def is_contaminated(text: str, banned: frozenset[tuple[str, ...]], n: int = NGRAM) -> bool:
    toks = _TOKEN.findall(text)
    return any(tuple(toks[i : i + n]) in banned for i in range(len(toks) - n + 1))


def decontaminate(
    texts: Iterable[str], banned: frozenset[tuple[str, ...]] | None = None, n: int = NGRAM
) -> tuple[list[int], int]:
    """Indices of the clean texts, and how many were removed."""
    banned = humaneval_ngrams(n) if banned is None else banned
    texts = list(texts)
    keep = [i for i, t in enumerate(texts) if not is_contaminated(t, banned, n)]
    return keep, len(texts) - len(keep)
