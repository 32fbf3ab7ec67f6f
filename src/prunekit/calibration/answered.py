"""Calibration on the model's own answers: code instructions made from a corpus, answered by the
model being pruned, kept where the answer runs in the sandbox. One sequence per answer, weighted
on the answer's positions, so a score measures what a cut changes in the code the model writes
(not in the text it reads)."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.data.sources import ANSWERED
from prunekit.errors import PrunekitError


def answered_batches(
    model: nn.Module,
    tokenizer,
    corpus: str,
    asked: int,
    seq_len: int,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[list[torch.Tensor], list[torch.Tensor], dict]:
    """(one 1 × T batch per kept answer, its 1 × T weights: 1 where an answer token is
    predicted, and the description for the report). Answers are cached per model (the model as
    it is now: after earlier cuts, the cut model answers)."""
    from prunekit.models.registry import cache_root
    from prunekit.recovery.answers import teacher_answers
    from prunekit.recovery.data import build_training_data, instructions_from

    items = instructions_from(corpus, asked, seed)
    home = next(model.parameters()).device
    model.to(device)  # generation runs where the model is; it goes back after
    try:
        answers, rep = teacher_answers(
            items, corpus, model, tokenizer, cache_root(), device=device, progress=progress
        )
    finally:
        model.to(home)
    spec = f"{ANSWERED}{corpus}"
    try:
        data = build_training_data(
            spec,
            tokenizer,
            seq_len=seq_len,
            windows=0,
            instructions=asked,
            seed=seed,
            answers=answers,
        )
    except PrunekitError:
        raise PrunekitError(
            f"source {spec}: none of the {rep['asked']} answers ran in the sandbox; "
            "ask more (samples) or score on the corpus (source: python)"
        ) from None
    batches = [torch.tensor([s.ids]) for s in data.samples]
    weights = [torch.tensor([s.weights]) for s in data.samples]
    desc = {
        "source": spec,
        "description": f"the model's own sandbox-checked answers to code instructions from {corpus}",
        "samples": len(batches),
        "seq_len": seq_len,
        "seed": seed,
        "tokens": sum(b.numel() for b in batches),
        "scored_tokens": int(sum(float(w.sum()) for w in weights)),
        "removed_humaneval_overlap": data.report["sources"][spec]["removed_humaneval_overlap"],
        "answers": rep,
    }
    return batches, weights, desc
